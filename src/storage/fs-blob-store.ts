import { createHash, randomUUID } from 'node:crypto';
import { type BigIntStats, type Dirent, constants as fsConstants } from 'node:fs';
import {
  type FileHandle,
  lstat,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rmdir,
  unlink,
} from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { AppError } from '../errors.js';
import type { BlobInfo, BlobStore, ByteRange, PutOptions } from './blob-store.js';
import { assertValidKey, assertValidPrefix, keyProblem } from './keys.js';

/** Temp files untouched for this long belong to a write that died with its process. */
const STALE_TEMP_MS = 60 * 60 * 1000;
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
 * - `tmp/`: files being written; renamed into place once complete and fsynced.
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
    // Best-effort and non-blocking; the first put waits for it so the two never race.
    this.sweep = this.removeStaleTemps().catch(() => undefined);
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

    const temp = this.inside(this.tmpDir, join(this.tmpDir, `${randomUUID()}.tmp`));
    let metaFile: string | undefined;
    try {
      const { sha256, stats } = await writeBody(temp, body, maxBytes);
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
        [this.objectsDir, this.metaDir, this.tmpDir].map((d) => mkdir(d, { recursive: true })),
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
