import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { type BigIntStats, type Dirent, constants as fsConstants } from 'node:fs';
import {
  type FileHandle,
  lstat,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  rmdir,
  unlink,
} from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { AppError, isAppError } from '../errors.js';
import type { BlobInfo, BlobStore, ByteRange, PutOptions, UploadedPart } from './blob-store.js';
import { assertValidKey, assertValidPrefix, keyProblem } from './keys.js';

/** Temp files untouched for this long belong to a write that died with its process. */
const STALE_TEMP_MS = 60 * 60 * 1000;
/** Multipart folders untouched (no part written, no complete) for this long are abandoned. */
const STALE_MULTIPART_MS = 7 * 24 * 60 * 60 * 1000;
/** Part numbers, as in S3. */
const MIN_PART_NUMBER = 1;
const MAX_PART_NUMBER = 10_000;
/** The only upload ids this store accepts (and the shape of those it hands out): never a path. */
const UPLOAD_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** A part's data file is named by its part number, written canonically (no sign, no leading zero). */
const PART_FILE = /^[1-9][0-9]{0,4}$/;
/** The record of what a multipart upload will become, in its folder. */
const UPLOAD_RECORD = 'upload.json';
/** Read buffer for joining parts: bounds the memory a complete uses, whatever the part sizes. */
const COPY_CHUNK_BYTES = 1024 * 1024;
/** Refuse to follow a symlink planted at an object's path (0 where the platform lacks the flag). */
const O_NOFOLLOW = fsConstants.O_NOFOLLOW ?? 0;
/** Errors that mean "no object here" when reading a path derived from a valid key. */
const ABSENT = new Set(['ENOENT', 'ENOTDIR', 'ENAMETOOLONG']);

/** What the sidecar of one stored file records (everything else comes from `lstat` of the file). */
interface Sidecar {
  key: string;
  sha256: string;
  contentType?: string | undefined;
}

/** `upload.json` of one multipart upload. */
interface UploadRecord {
  key: string;
  contentType?: string | undefined;
  createdAt: string;
}

/** A file written and fsynced, not yet renamed into place. */
interface Written {
  sha256: string;
  stats: BigIntStats;
}

/** A part found in an upload folder, with the identity of the data file its etag describes. */
interface FoundPart extends UploadedPart {
  stats: BigIntStats;
}

/**
 * A `BlobStore` on a local filesystem.
 *
 * Layout under `root`:
 * - `objects/<key>`: the object's bytes, exactly as stored (a plain file);
 * - `meta/<hh>/<sha256(key)>-<ino>-<size>-<mtimeNs>.json`: the sidecar (sha256 and content type) of
 *   one particular data file. It is addressed by the identity of the data file it describes, so it
 *   is written *before* the data file is renamed into place and the data rename is the single commit
 *   point: a reader that finds a data file always finds the sidecar written for exactly those bytes,
 *   and concurrent puts can never pair one writer's bytes with another writer's metadata;
 * - `tmp/`: files being written; renamed into place once complete and fsynced;
 * - `multipart/<uploadId>/`: one multipart upload. `upload.json` records the key and content type;
 *   each part is a file named by its part number, committed like an object (written to a `.tmp-*`
 *   file in the same folder, fsynced, renamed into place) with its sha256 in an identity-named
 *   sidecar `<partNumber>.<ino>-<size>-<mtimeNs>.sha256` written before that rename. Temp files
 *   live inside the folder, so once the folder is gone nothing can be created in it again.
 *   Completing first renames the folder to `<uploadId>.completing-<uuid>` (the claim: of two
 *   concurrent completes exactly one rename succeeds, and later part writes find no folder), then
 *   joins the parts into a temp file in `tmp/` and commits it exactly like `put`. Aborting renames
 *   the folder to `<uploadId>.aborting-<uuid>` before removing it. Upload ids match
 *   `[A-Za-z0-9_-]{1,64}`, so neither a hostile id nor a claimed folder (with its `.`) can be
 *   addressed as an upload. Folders untouched for 7 days are removed when a store starts.
 *
 * The etag is the quoted sha256 of the bytes, computed while streaming. A data file without its
 * sidecar (copied in by hand, or a sidecar lost in a crash) is still served, with an etag derived
 * from inode, size and mtime and no content type.
 *
 * Filesystem limits the port does not have: one key cannot be both an object and a "directory" of
 * other objects (`a` and `a/b`), and each key segment must fit a file name (255 bytes on most
 * filesystems). Puts that hit either limit fail with `KEY_INVALID`.
 */
export class FsBlobStore implements BlobStore {
  readonly root: string;
  private readonly objectsDir: string;
  private readonly metaDir: string;
  private readonly tmpDir: string;
  private readonly multipartDir: string;
  private readonly sweep: Promise<void>;
  private dirsReady: Promise<void> | undefined;

  constructor(options: { root: string }) {
    if (typeof options?.root !== 'string' || options.root.trim() === '') {
      throw new AppError('CONFIG_INVALID', 'The filesystem blob store needs a root directory.');
    }
    this.root = resolve(options.root);
    this.objectsDir = join(this.root, 'objects');
    this.metaDir = join(this.root, 'meta');
    this.tmpDir = join(this.root, 'tmp');
    this.multipartDir = join(this.root, 'multipart');
    // Best-effort and non-blocking; every write waits for it so the two never race.
    this.sweep = Promise.all([this.removeStaleTemps(), this.removeStaleUploads()]).then(
      () => undefined,
      () => undefined,
    );
  }

  async put(key: string, body: Readable | Uint8Array, options: PutOptions = {}): Promise<BlobInfo> {
    assertValidKey(key);
    const target = this.objectPath(key);
    const { maxBytes, contentType } = options;
    if (body instanceof Uint8Array && maxBytes !== undefined && body.byteLength > maxBytes) {
      throw tooLarge(maxBytes);
    }
    await this.sweep;
    await this.ensureDirs();

    const temp = this.newTemp();
    let written: Written;
    try {
      written = await writeBody(temp, body, maxBytes);
    } catch (err) {
      await unlinkQuiet(temp);
      throw err;
    }
    return this.commit(key, target, temp, written, contentType);
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    assertValidKey(key);
    const file = this.objectPath(key);
    let handle: FileHandle;
    try {
      handle = await open(file, fsConstants.O_RDONLY | O_NOFOLLOW);
    } catch (err) {
      const code = errnoCode(err);
      if ((code && ABSENT.has(code)) || code === 'ELOOP' || code === 'EISDIR') throw notFound(key);
      throw err;
    }
    try {
      // Sizes come from the open file, so a concurrent overwrite cannot skew the range check:
      // the stream reads the version that was opened, start to end.
      const stats = await handle.stat();
      if (!stats.isFile()) throw notFound(key);
      if (range === undefined) return handle.createReadStream();
      return handle.createReadStream(satisfiable(range, stats.size));
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async head(key: string): Promise<BlobInfo | undefined> {
    assertValidKey(key);
    return this.describe(key, this.objectPath(key));
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    const file = this.objectPath(key);
    const stats = await lstatFile(file);
    if (!stats) return;
    try {
      await unlink(file);
    } catch (err) {
      if (!isAbsent(err)) throw err;
    }
    await unlinkQuiet(this.metaPath(key, stats));
    await this.pruneEmptyParents(dirname(file));
  }

  async *list(prefix: string): AsyncGenerator<BlobInfo> {
    assertValidPrefix(prefix);
    // `a/b` lists directory `a` for names starting with `b`; `a/b/` lists directory `a/b` whole.
    const cut = prefix.lastIndexOf('/') + 1;
    const dirKey = prefix.slice(0, cut);
    const dir =
      dirKey === '' ? this.objectsDir : this.inside(this.objectsDir, resolve(this.objectsDir, dirKey));
    yield* this.walk(dir, dirKey, prefix.slice(cut));
  }

  async createMultipart(key: string, options: { contentType?: string | undefined } = {}): Promise<string> {
    assertValidKey(key);
    await this.sweep;
    await this.ensureDirs();
    const record: UploadRecord = {
      key,
      contentType: options.contentType,
      createdAt: new Date().toISOString(),
    };
    for (let attempt = 1; ; attempt++) {
      const uploadId = randomBytes(18).toString('base64url');
      const dir = this.uploadDir(uploadId);
      try {
        await mkdir(dir);
      } catch (err) {
        if (errnoCode(err) === 'EEXIST' && attempt < 5) continue; // 144 random bits: never, really
        throw err;
      }
      try {
        await writeNewFile(join(dir, UPLOAD_RECORD), JSON.stringify(record));
      } catch (err) {
        await rm(dir, { recursive: true, force: true });
        throw err;
      }
      await syncDir(this.multipartDir);
      return uploadId;
    }
  }

  async putPart(
    key: string,
    uploadId: string,
    partNumber: number,
    body: Readable | Uint8Array,
    options: { maxBytes?: number | undefined } = {},
  ): Promise<UploadedPart> {
    assertValidKey(key);
    assertPartNumber(partNumber);
    const dir = this.uploadDir(uploadId);
    const { maxBytes } = options;
    if (body instanceof Uint8Array && maxBytes !== undefined && body.byteLength > maxBytes) {
      throw tooLarge(maxBytes);
    }
    await this.sweep;
    await this.readUpload(dir, key, uploadId);

    // The temp file lives in the upload folder: if the upload is completed or aborted meanwhile,
    // creating it or renaming it into place fails instead of resurrecting the folder.
    const temp = join(dir, `.tmp-${randomUUID()}`);
    const target = join(dir, String(partNumber));
    let sidecar: string | undefined;
    try {
      const { sha256, stats } = await writeBody(temp, body, maxBytes);
      sidecar = partSidecarPath(dir, partNumber, stats);
      await writeFileAtomicIn(dir, sidecar, sha256);
      const previous = await lstatFile(target);
      await rename(temp, target);
      sidecar = undefined; // committed: the sidecar now belongs to the live part
      await syncDir(dir);
      if (previous && !sameFile(previous, stats)) {
        await unlinkQuiet(partSidecarPath(dir, partNumber, previous));
      }
      return { partNumber, etag: `"${sha256}"`, size: Number(stats.size) };
    } catch (err) {
      if (sidecar !== undefined) await unlinkQuiet(sidecar);
      await unlinkQuiet(temp);
      if (isAbsent(err) && !(await isDirectory(dir))) throw uploadNotFound(uploadId);
      throw err;
    }
  }

  async listParts(key: string, uploadId: string): Promise<UploadedPart[]> {
    assertValidKey(key);
    const dir = this.uploadDir(uploadId);
    await this.sweep;
    await this.readUpload(dir, key, uploadId);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      if (isAbsent(err)) throw uploadNotFound(uploadId);
      throw err;
    }
    const parts: UploadedPart[] = [];
    for (const name of names) {
      if (!PART_FILE.test(name) || Number(name) > MAX_PART_NUMBER) continue;
      const part = await this.describePart(dir, Number(name));
      if (part) parts.push({ partNumber: part.partNumber, etag: part.etag, size: part.size });
    }
    // Completed or aborted while we looked: what we saw is no longer an upload.
    await this.readUpload(dir, key, uploadId);
    return parts.sort((a, b) => a.partNumber - b.partNumber);
  }

  async completeMultipart(
    key: string,
    uploadId: string,
    parts: ReadonlyArray<{ partNumber: number; etag: string }>,
  ): Promise<BlobInfo> {
    assertValidKey(key);
    const target = this.objectPath(key);
    const wanted = checkPartList(parts);
    const dir = this.uploadDir(uploadId);
    await this.sweep;
    await this.ensureDirs();
    const record = await this.readUpload(dir, key, uploadId);
    // Check the list before claiming, so a wrong list never hides the upload from anyone else.
    try {
      await this.findParts(dir, wanted);
    } catch (err) {
      await this.readUpload(dir, key, uploadId); // gone meanwhile: UPLOAD_NOT_FOUND wins
      throw err;
    }

    // The claim: one atomic rename. A concurrent complete or abort, and any later part write,
    // finds no folder; the parts below the claimed name can no longer change.
    const claimed = `${dir}.completing-${randomUUID()}`;
    try {
      await rename(dir, claimed);
    } catch (err) {
      if (isAbsent(err)) throw uploadNotFound(uploadId);
      throw err;
    }
    const temp = this.newTemp();
    let info: BlobInfo;
    try {
      // Again, now that nothing can change: a part may have been re-sent since the first check.
      const found = await this.findParts(claimed, wanted);
      const written = await joinParts(temp, claimed, found);
      info = await this.commit(key, target, temp, written, record.contentType);
    } catch (err) {
      await unlinkQuiet(temp);
      // Nothing was committed: hand the upload back so it can be completed (or aborted) later.
      await rename(claimed, dir).catch(() => undefined);
      throw err;
    }
    await rm(claimed, { recursive: true, force: true, maxRetries: 3 }).catch(() => undefined);
    return info;
  }

  async abortMultipart(key: string, uploadId: string): Promise<void> {
    assertValidKey(key);
    // An id this store could never have handed out names no upload: nothing to remove.
    if (typeof uploadId !== 'string' || !UPLOAD_ID.test(uploadId)) return;
    const dir = this.uploadDir(uploadId);
    await this.sweep;
    try {
      await this.readUpload(dir, key, uploadId);
    } catch (err) {
      if (isAppError(err) && err.code === 'UPLOAD_NOT_FOUND') return; // unknown, finished or not this key's
      throw err;
    }
    // Rename first, so part writes and completes racing with the removal find no upload at all.
    const doomed = `${dir}.aborting-${randomUUID()}`;
    try {
      await rename(dir, doomed);
    } catch (err) {
      if (isAbsent(err)) return;
      throw err;
    }
    await rm(doomed, { recursive: true, force: true, maxRetries: 3 });
  }

  async close(): Promise<void> {
    await this.sweep;
  }

  /** Depth-first walk that yields in key order (byte order of the UTF-8 keys). */
  private async *walk(dir: string, keyPrefix: string, namePrefix: string): AsyncGenerator<BlobInfo> {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (isAbsent(err)) return;
      throw err;
    }
    // Every key below directory `d` starts with `d/`, so sorting directories as `name/` next to
    // files as `name` makes depth-first order equal to key order (`a.txt` < `a/x` < `a0`).
    const children = entries
      .filter((e) => e.name.startsWith(namePrefix) && (e.isFile() || e.isDirectory()))
      .map((e) => ({
        name: e.name,
        isDir: e.isDirectory(),
        sortName: e.isDirectory() ? `${e.name}/` : e.name,
      }))
      .sort((a, b) => compareKeys(a.sortName, b.sortName));
    for (const child of children) {
      const key = keyPrefix + child.name;
      const path = join(dir, child.name);
      if (child.isDir) {
        yield* this.walk(path, `${key}/`, '');
      } else if (keyProblem(key) === undefined) {
        const info = await this.describe(key, path);
        if (info) yield info;
      }
    }
  }

  /** Metadata of the data file at `file`, or `undefined` when there is none. */
  private async describe(key: string, file: string): Promise<BlobInfo | undefined> {
    let stats = await lstatFile(file);
    for (let attempt = 0; stats && attempt < 5; attempt++) {
      const sidecar = await this.readSidecar(key, stats);
      if (sidecar) return toInfo(key, stats, sidecar);
      // No sidecar: either there is none for this file, or a put replaced the file (and removed
      // the old sidecar) since the lstat. Look again; only the first case is final.
      const again = await lstatFile(file);
      if (!again || sameFile(stats, again)) return again && toInfo(key, again, undefined);
      stats = again;
    }
    return stats && toInfo(key, stats, undefined);
  }

  private async readSidecar(key: string, stats: BigIntStats): Promise<Sidecar | undefined> {
    let text: string;
    try {
      text = await readFile(this.metaPath(key, stats), 'utf8');
    } catch (err) {
      if (isAbsent(err)) return undefined;
      throw err;
    }
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed !== 'object' || parsed === null) return undefined;
      const { key: storedKey, sha256, contentType } = parsed as Record<string, unknown>;
      if (storedKey !== key || typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(sha256)) return undefined;
      if (contentType !== undefined && typeof contentType !== 'string') return undefined;
      return { key, sha256, contentType };
    } catch {
      return undefined; // a corrupt sidecar: serve the bytes without it
    }
  }

  /**
   * Makes the fsynced `temp` the object at `key`: writes the sidecar for exactly that file, renames
   * it into place (the single commit point), then drops the replaced file's sidecar. On failure
   * nothing is committed and `temp` is removed.
   */
  private async commit(
    key: string,
    target: string,
    temp: string,
    { sha256, stats }: Written,
    contentType: string | undefined,
  ): Promise<BlobInfo> {
    let metaFile: string | undefined;
    try {
      metaFile = this.metaPath(key, stats);
      const sidecar: Sidecar = { key, sha256, contentType };
      await this.writeFileAtomic(metaFile, JSON.stringify(sidecar));
      const previous = await lstatFile(target);
      await this.renameIntoPlace(temp, target, key);
      metaFile = undefined; // committed: the sidecar now belongs to the live object
      await syncDir(dirname(target));
      // The replaced file's sidecar is garbage now (best-effort; a leftover is harmless).
      if (previous && !sameFile(previous, stats)) await unlinkQuiet(this.metaPath(key, previous));
      return { key, size: Number(stats.size), etag: `"${sha256}"`, contentType, lastModified: stats.mtime };
    } catch (err) {
      if (metaFile !== undefined) await unlinkQuiet(metaFile);
      await unlinkQuiet(temp);
      throw err;
    }
  }

  private newTemp(): string {
    return this.inside(this.tmpDir, join(this.tmpDir, `${randomUUID()}.tmp`));
  }

  /** The folder of upload `uploadId`; an id this store could not have handed out is not found. */
  private uploadDir(uploadId: string): string {
    if (typeof uploadId !== 'string' || !UPLOAD_ID.test(uploadId)) throw uploadNotFound(uploadId);
    const dir = resolve(this.multipartDir, uploadId);
    if (!dir.startsWith(this.multipartDir + sep)) throw uploadNotFound(uploadId);
    return dir;
  }

  /** The upload's record; `UPLOAD_NOT_FOUND` when there is none, or it is another key's upload. */
  private async readUpload(dir: string, key: string, uploadId: string): Promise<UploadRecord> {
    let text: string;
    try {
      text = await readFile(join(dir, UPLOAD_RECORD), 'utf8');
    } catch (err) {
      if (isAbsent(err)) throw uploadNotFound(uploadId);
      throw err;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw uploadNotFound(uploadId); // a torn record (crash while creating): never handed out
    }
    const record = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Record<string, unknown>;
    const { contentType, createdAt } = record;
    if (
      record.key !== key ||
      typeof createdAt !== 'string' ||
      (contentType !== undefined && typeof contentType !== 'string')
    ) {
      throw uploadNotFound(uploadId);
    }
    return { key, contentType, createdAt };
  }

  /** Every listed part with the etag it was given, or `VALIDATION_FAILED` naming the first that is not. */
  private async findParts(
    dir: string,
    wanted: ReadonlyArray<{ partNumber: number; etag: string }>,
  ): Promise<FoundPart[]> {
    const found: FoundPart[] = [];
    for (const { partNumber, etag } of wanted) {
      const part = await this.describePart(dir, partNumber);
      if (!part) {
        throw new AppError('VALIDATION_FAILED', `Part ${partNumber} was not uploaded.`);
      }
      if (unquote(part.etag) !== unquote(etag)) {
        throw new AppError(
          'VALIDATION_FAILED',
          `Part ${partNumber} does not match the etag given for it (it was re-sent, or the etag is wrong).`,
        );
      }
      found.push(part);
    }
    return found;
  }

  /** The part's data file and the etag written for exactly it, or `undefined` when there is none. */
  private async describePart(dir: string, partNumber: number): Promise<FoundPart | undefined> {
    const file = join(dir, String(partNumber));
    let stats = await lstatFile(file);
    for (let attempt = 0; stats && attempt < 5; attempt++) {
      const sha256 = await readPartSidecar(partSidecarPath(dir, partNumber, stats));
      if (sha256) return { partNumber, etag: `"${sha256}"`, size: Number(stats.size), stats };
      // A re-send may have replaced the file (and removed the old sidecar) since the lstat.
      const again = await lstatFile(file);
      if (!again || sameFile(stats, again)) return undefined; // no etag for these bytes: not a part
      stats = again;
    }
    return undefined;
  }

  private objectPath(key: string): string {
    return this.inside(this.objectsDir, resolve(this.objectsDir, key));
  }

  private metaPath(key: string, stats: BigIntStats): string {
    const h = createHash('sha256').update(key, 'utf8').digest('hex');
    const name = `${h}-${stats.ino}-${stats.size}-${stats.mtimeNs}.json`;
    return this.inside(this.metaDir, join(this.metaDir, h.slice(0, 2), name));
  }

  /** Defence in depth behind key validation: a resolved path must stay below `base`. */
  private inside(base: string, path: string): string {
    const resolved = resolve(path);
    if (!resolved.startsWith(base + sep)) {
      throw new AppError('KEY_INVALID', 'The blob key resolves outside the store.');
    }
    return resolved;
  }

  private ensureDirs(): Promise<void> {
    if (!this.dirsReady) {
      this.dirsReady = Promise.all(
        [this.objectsDir, this.metaDir, this.tmpDir, this.multipartDir].map((d) =>
          mkdir(d, { recursive: true }),
        ),
      ).then(
        () => undefined,
        (err: unknown) => {
          this.dirsReady = undefined;
          throw err;
        },
      );
    }
    return this.dirsReady;
  }

  private async renameIntoPlace(temp: string, target: string, key: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await mkdir(dirname(target), { recursive: true });
        await rename(temp, target);
        return;
      } catch (err) {
        const code = errnoCode(err);
        // A concurrent delete may prune the parent directory between mkdir and rename.
        if (code === 'ENOENT' && attempt < 5) continue;
        if (code === 'EEXIST' || code === 'ENOTDIR' || code === 'EISDIR' || code === 'ENOTEMPTY') {
          throw new AppError(
            'KEY_INVALID',
            `Blob key ${JSON.stringify(key)} conflicts with a stored object: the filesystem store cannot hold both "a" and "a/b".`,
            { cause: err },
          );
        }
        if (code === 'ENAMETOOLONG') {
          throw new AppError(
            'KEY_INVALID',
            `Blob key ${JSON.stringify(key)} has a segment too long for a file name.`,
            {
              cause: err,
            },
          );
        }
        throw err;
      }
    }
  }

  private async writeFileAtomic(file: string, text: string): Promise<void> {
    const temp = join(this.tmpDir, `${randomUUID()}.meta.tmp`);
    try {
      const handle = await open(temp, 'wx', 0o644);
      try {
        await handle.writeFile(text, 'utf8');
        await handle.sync();
      } finally {
        await handle.close();
      }
      await mkdir(dirname(file), { recursive: true });
      await rename(temp, file);
    } catch (err) {
      await unlinkQuiet(temp);
      throw err;
    }
  }

  private async pruneEmptyParents(dir: string): Promise<void> {
    let current = dir;
    while (current.startsWith(this.objectsDir + sep)) {
      try {
        await rmdir(current);
      } catch {
        return; // not empty (or already gone, or raced with a put): stop
      }
      current = dirname(current);
    }
  }

  /** Removes upload folders (live, or claimed by a process that died) untouched for a week. */
  private async removeStaleUploads(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.multipartDir);
    } catch {
      return;
    }
    const cutoff = Date.now() - STALE_MULTIPART_MS;
    for (const name of names) {
      const path = join(this.multipartDir, name);
      try {
        const stats = await lstat(path);
        if (stats.isDirectory() && stats.mtimeMs < cutoff) await rm(path, { recursive: true, force: true });
      } catch {
        // best-effort: the next start tries again
      }
    }
  }

  private async removeStaleTemps(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.tmpDir);
    } catch {
      return;
    }
    const cutoff = Date.now() - STALE_TEMP_MS;
    for (const name of names) {
      const path = join(this.tmpDir, name);
      try {
        const stats = await lstat(path);
        if (stats.isFile() && stats.mtimeMs < cutoff) await unlink(path);
      } catch {
        // best-effort: the next start tries again
      }
    }
  }
}

/** Streams the body into a new file at `temp`, hashing and counting; fsyncs before returning. */
async function writeBody(
  temp: string,
  body: Readable | Uint8Array,
  maxBytes: number | undefined,
): Promise<{ sha256: string; stats: BigIntStats }> {
  const hash = createHash('sha256');
  const handle = await open(temp, 'wx', 0o644);
  try {
    if (body instanceof Uint8Array) {
      hash.update(body);
      await writeAll(handle, body);
    } else {
      let total = 0;
      try {
        for await (const chunk of body) {
          const bytes = toBytes(chunk);
          total += bytes.byteLength;
          if (maxBytes !== undefined && total > maxBytes) throw tooLarge(maxBytes);
          hash.update(bytes);
          await writeAll(handle, bytes);
        }
      } catch (err) {
        body.destroy();
        throw err;
      }
    }
    await handle.sync();
    const stats = await handle.stat({ bigint: true });
    return { sha256: hash.digest('hex'), stats };
  } finally {
    await handle.close();
  }
}

/**
 * Joins the parts, in order, into a new file at `temp`, hashing as it goes; fsyncs before returning.
 * Reads through one fixed buffer, so memory stays bounded whatever the part sizes.
 */
async function joinParts(temp: string, dir: string, parts: readonly FoundPart[]): Promise<Written> {
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(COPY_CHUNK_BYTES);
  const out = await open(temp, 'wx', 0o644);
  try {
    for (const part of parts) {
      const source = await open(join(dir, String(part.partNumber)), fsConstants.O_RDONLY | O_NOFOLLOW);
      try {
        const stats = await source.stat({ bigint: true });
        if (!sameFile(stats, part.stats)) {
          throw new AppError('VALIDATION_FAILED', `Part ${part.partNumber} changed while completing.`);
        }
        let copied = 0;
        for (;;) {
          const { bytesRead } = await source.read(buffer, 0, buffer.byteLength, null);
          if (bytesRead === 0) break;
          const chunk = buffer.subarray(0, bytesRead);
          hash.update(chunk);
          await writeAll(out, chunk);
          copied += bytesRead;
        }
        if (copied !== part.size) {
          throw new AppError('VALIDATION_FAILED', `Part ${part.partNumber} changed while completing.`);
        }
      } finally {
        await source.close();
      }
    }
    await out.sync();
    const stats = await out.stat({ bigint: true });
    return { sha256: hash.digest('hex'), stats };
  } finally {
    await out.close();
  }
}

/** Creates `file` (which must not exist) with `text`, fsynced. */
async function writeNewFile(file: string, text: string): Promise<void> {
  const handle = await open(file, 'wx', 0o644);
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes `file` (in `dir`) through a temp file in `dir`; never creates `dir`. */
async function writeFileAtomicIn(dir: string, file: string, text: string): Promise<void> {
  const temp = join(dir, `.tmp-${randomUUID()}`);
  try {
    await writeNewFile(temp, text);
    await rename(temp, file);
  } catch (err) {
    await unlinkQuiet(temp);
    throw err;
  }
}

function partSidecarPath(dir: string, partNumber: number, stats: BigIntStats): string {
  return join(dir, `${partNumber}.${stats.ino}-${stats.size}-${stats.mtimeNs}.sha256`);
}

async function readPartSidecar(path: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (isAbsent(err)) return undefined;
    throw err;
  }
  return /^[0-9a-f]{64}$/.test(text) ? text : undefined;
}

function assertPartNumber(partNumber: number): void {
  if (!Number.isInteger(partNumber) || partNumber < MIN_PART_NUMBER || partNumber > MAX_PART_NUMBER) {
    throw new AppError(
      'VALIDATION_FAILED',
      `Part number ${String(partNumber)} is not an integer from ${MIN_PART_NUMBER} to ${MAX_PART_NUMBER}.`,
    );
  }
}

/** The list given to complete: at least one part, valid numbers, strictly increasing, with etags. */
function checkPartList(
  parts: ReadonlyArray<{ partNumber: number; etag: string }>,
): ReadonlyArray<{ partNumber: number; etag: string }> {
  if (!Array.isArray(parts) || parts.length === 0) {
    throw new AppError('VALIDATION_FAILED', 'Completing an upload needs the list of its parts.');
  }
  if (parts.length > MAX_PART_NUMBER) {
    throw new AppError('VALIDATION_FAILED', `An upload has at most ${MAX_PART_NUMBER} parts.`);
  }
  let previous = 0;
  for (const part of parts) {
    const partNumber: unknown = part?.partNumber;
    assertPartNumber(partNumber as number);
    if ((partNumber as number) <= previous) {
      throw new AppError(
        'VALIDATION_FAILED',
        `Part ${String(partNumber)} is listed after part ${previous}: list parts in strictly increasing order.`,
      );
    }
    if (typeof part.etag !== 'string' || part.etag === '') {
      throw new AppError('VALIDATION_FAILED', `Part ${String(partNumber)} is listed without its etag.`);
    }
    previous = partNumber as number;
  }
  return parts;
}

/** Etags compare with or without their quotes (clients often strip them). */
function unquote(etag: string): string {
  return etag.length >= 2 && etag.startsWith('"') && etag.endsWith('"') ? etag.slice(1, -1) : etag;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await lstat(path)).isDirectory();
  } catch {
    return false;
  }
}

async function writeAll(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.byteLength) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.byteLength - offset);
    offset += bytesWritten;
  }
}

function toBytes(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  throw new TypeError('A blob body must yield bytes.');
}

/** The inclusive `{ start, end }` to read, with `end` clamped to the last byte (as HTTP does). */
function satisfiable(range: ByteRange, size: number): { start: number; end: number } {
  const { start, end } = range;
  const valid =
    Number.isSafeInteger(start) &&
    start >= 0 &&
    start < size &&
    (end === undefined || (Number.isSafeInteger(end) && end >= start));
  if (!valid) {
    throw new AppError(
      'RANGE_NOT_SATISFIABLE',
      `The range ${start}-${end ?? ''} cannot be satisfied for a blob of ${size} bytes.`,
    );
  }
  return { start, end: Math.min(end ?? size - 1, size - 1) };
}

function toInfo(key: string, stats: BigIntStats, sidecar: Sidecar | undefined): BlobInfo {
  const etag = sidecar
    ? `"${sidecar.sha256}"`
    : `"${stats.ino.toString(36)}-${stats.size.toString(36)}-${stats.mtimeNs.toString(36)}"`;
  return {
    key,
    size: Number(stats.size),
    etag,
    contentType: sidecar?.contentType,
    lastModified: stats.mtime,
  };
}

/** `lstat` of a regular file, or `undefined` when there is none (missing, a directory, a symlink). */
async function lstatFile(path: string): Promise<BigIntStats | undefined> {
  try {
    const stats = await lstat(path, { bigint: true });
    return stats.isFile() ? stats : undefined;
  } catch (err) {
    if (isAbsent(err)) return undefined;
    throw err;
  }
}

function sameFile(a: BigIntStats, b: BigIntStats): boolean {
  return a.ino === b.ino && a.dev === b.dev && a.size === b.size && a.mtimeNs === b.mtimeNs;
}

/** Byte order of the UTF-8 encodings, which is what S3 and most stores list by. */
function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // best-effort: not every platform can fsync a directory
  }
}

async function unlinkQuiet(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch {
    // already gone, or not ours to worry about
  }
}

function errnoCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null || err instanceof AppError) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

function isAbsent(err: unknown): boolean {
  const code = errnoCode(err);
  return code !== undefined && ABSENT.has(code);
}

function notFound(key: string): AppError {
  return new AppError('BLOB_NOT_FOUND', `No blob is stored under ${JSON.stringify(key)}.`);
}

function tooLarge(maxBytes: number): AppError {
  return new AppError('UPLOAD_TOO_LARGE', `The upload is larger than the limit of ${maxBytes} bytes.`);
}

function uploadNotFound(uploadId: unknown): AppError {
  const shown = typeof uploadId === 'string' && UPLOAD_ID.test(uploadId) ? ` ${uploadId}` : '';
  return new AppError('UPLOAD_NOT_FOUND', `No multipart upload${shown} is in progress for this key.`);
}
