import { randomUUID } from 'node:crypto';
import { type Dirent, constants as fsConstants } from 'node:fs';
import { type FileHandle, lstat, mkdir, open, readdir, rename, rmdir, unlink } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { AppError } from '../errors.js';
import type { BlobInfo, BlobStore, ByteRange, PutOptions, UploadedPart } from './blob-store.js';
import {
  ABSENT,
  errnoCode,
  inside,
  isAbsent,
  lstatFile,
  O_NOFOLLOW,
  sameFile,
  syncDir,
  tooLarge,
  unlinkQuiet,
  type Written,
  writeBody,
} from './fs-io.js';
import { FsMultipart, removeStaleUploads } from './fs-multipart.js';
import { objectSidecarPath, readObjectSidecar, type Sidecar, toInfo } from './fs-sidecars.js';
import { assertValidKey, assertValidPrefix, keyProblem } from './keys.js';

/** Temp files untouched for this long belong to a write that died with its process. */
const STALE_TEMP_MS = 60 * 60 * 1000;

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
  private readonly multipart: FsMultipart;
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
    this.sweep = Promise.all([this.removeStaleTemps(), removeStaleUploads(this.multipartDir)]).then(
      () => undefined,
      () => undefined,
    );
    this.multipart = new FsMultipart(this.multipartDir, {
      sweep: this.sweep,
      ensureDirs: () => this.ensureDirs(),
      objectPath: (key) => this.objectPath(key),
      newTemp: () => this.newTemp(),
      commit: (key, target, temp, written, contentType) =>
        this.commit(key, target, temp, written, contentType),
    });
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

  async localPath(key: string): Promise<string | undefined> {
    assertValidKey(key);
    const file = this.objectPath(key);
    // lstat: a symlink planted in the objects folder is not an object (as in `get`, O_NOFOLLOW).
    return (await lstatFile(file)) ? file : undefined;
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
    await unlinkQuiet(objectSidecarPath(this.metaDir, key, stats));
    await this.pruneEmptyParents(dirname(file));
  }

  async *list(prefix: string): AsyncGenerator<BlobInfo> {
    assertValidPrefix(prefix);
    // `a/b` lists directory `a` for names starting with `b`; `a/b/` lists directory `a/b` whole.
    const cut = prefix.lastIndexOf('/') + 1;
    const dirKey = prefix.slice(0, cut);
    const dir = dirKey === '' ? this.objectsDir : inside(this.objectsDir, resolve(this.objectsDir, dirKey));
    yield* this.walk(dir, dirKey, prefix.slice(cut));
  }

  async createMultipart(key: string, options: { contentType?: string | undefined } = {}): Promise<string> {
    return this.multipart.createMultipart(key, options);
  }

  async putPart(
    key: string,
    uploadId: string,
    partNumber: number,
    body: Readable | Uint8Array,
    options: { maxBytes?: number | undefined } = {},
  ): Promise<UploadedPart> {
    return this.multipart.putPart(key, uploadId, partNumber, body, options);
  }

  async listParts(key: string, uploadId: string): Promise<UploadedPart[]> {
    return this.multipart.listParts(key, uploadId);
  }

  async completeMultipart(
    key: string,
    uploadId: string,
    parts: ReadonlyArray<{ partNumber: number; etag: string }>,
  ): Promise<BlobInfo> {
    return this.multipart.completeMultipart(key, uploadId, parts);
  }

  async abortMultipart(key: string, uploadId: string): Promise<void> {
    return this.multipart.abortMultipart(key, uploadId);
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
      const sidecar = await readObjectSidecar(this.metaDir, key, stats);
      if (sidecar) return toInfo(key, stats, sidecar);
      // No sidecar: either there is none for this file, or a put replaced the file (and removed
      // the old sidecar) since the lstat. Look again; only the first case is final.
      const again = await lstatFile(file);
      if (!again || sameFile(stats, again)) return again && toInfo(key, again, undefined);
      stats = again;
    }
    return stats && toInfo(key, stats, undefined);
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
      metaFile = objectSidecarPath(this.metaDir, key, stats);
      const sidecar: Sidecar = { key, sha256, contentType };
      await this.writeFileAtomic(metaFile, JSON.stringify(sidecar));
      const previous = await lstatFile(target);
      await this.renameIntoPlace(temp, target, key);
      metaFile = undefined; // committed: the sidecar now belongs to the live object
      await syncDir(dirname(target));
      // The replaced file's sidecar is garbage now (best-effort; a leftover is harmless).
      if (previous && !sameFile(previous, stats))
        await unlinkQuiet(objectSidecarPath(this.metaDir, key, previous));
      return { key, size: Number(stats.size), etag: `"${sha256}"`, contentType, lastModified: stats.mtime };
    } catch (err) {
      if (metaFile !== undefined) await unlinkQuiet(metaFile);
      await unlinkQuiet(temp);
      throw err;
    }
  }

  private newTemp(): string {
    return inside(this.tmpDir, join(this.tmpDir, `${randomUUID()}.tmp`));
  }

  private objectPath(key: string): string {
    return inside(this.objectsDir, resolve(this.objectsDir, key));
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

/** Byte order of the UTF-8 encodings, which is what S3 and most stores list by. */
function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function notFound(key: string): AppError {
  return new AppError('BLOB_NOT_FOUND', `No blob is stored under ${JSON.stringify(key)}.`);
}
