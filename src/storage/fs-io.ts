import { createHash, randomUUID } from 'node:crypto';
import { type BigIntStats, constants as fsConstants } from 'node:fs';
import { type FileHandle, lstat, open, rename, unlink } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { AppError } from '../errors.js';

/** Refuse to follow a symlink planted at an object's path (0 where the platform lacks the flag). */
export const O_NOFOLLOW = fsConstants.O_NOFOLLOW ?? 0;
/** Errors that mean "no object here" when reading a path derived from a valid key. */
export const ABSENT = new Set(['ENOENT', 'ENOTDIR', 'ENAMETOOLONG']);

/** A file written and fsynced, not yet renamed into place. */
export interface Written {
  sha256: string;
  stats: BigIntStats;
}

/** Streams the body into a new file at `temp`, hashing and counting; fsyncs before returning. */
export async function writeBody(
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

export async function writeAll(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.byteLength) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.byteLength - offset);
    offset += bytesWritten;
  }
}

export function toBytes(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  throw new TypeError('A blob body must yield bytes.');
}

/** `lstat` of a regular file, or `undefined` when there is none (missing, a directory, a symlink). */
export async function lstatFile(path: string): Promise<BigIntStats | undefined> {
  try {
    const stats = await lstat(path, { bigint: true });
    return stats.isFile() ? stats : undefined;
  } catch (err) {
    if (isAbsent(err)) return undefined;
    throw err;
  }
}

export function sameFile(a: BigIntStats, b: BigIntStats): boolean {
  return a.ino === b.ino && a.dev === b.dev && a.size === b.size && a.mtimeNs === b.mtimeNs;
}

export async function syncDir(dir: string): Promise<void> {
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

export async function unlinkQuiet(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch {
    // already gone, or not ours to worry about
  }
}

export function errnoCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null || err instanceof AppError) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

export function isAbsent(err: unknown): boolean {
  const code = errnoCode(err);
  return code !== undefined && ABSENT.has(code);
}

export function tooLarge(maxBytes: number): AppError {
  return new AppError('UPLOAD_TOO_LARGE', `The upload is larger than the limit of ${maxBytes} bytes.`);
}

/** Defence in depth behind key validation: a resolved path must stay below `base`. */
export function inside(base: string, path: string): string {
  const resolved = resolve(path);
  if (!resolved.startsWith(base + sep)) {
    throw new AppError('KEY_INVALID', 'The blob key resolves outside the store.');
  }
  return resolved;
}

/** Creates `file` (which must not exist) with `text`, fsynced. */
export async function writeNewFile(file: string, text: string): Promise<void> {
  const handle = await open(file, 'wx', 0o644);
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes `file` (in `dir`) through a temp file in `dir`; never creates `dir`. */
export async function writeFileAtomicIn(dir: string, file: string, text: string): Promise<void> {
  const temp = join(dir, `.tmp-${randomUUID()}`);
  try {
    await writeNewFile(temp, text);
    await rename(temp, file);
  } catch (err) {
    await unlinkQuiet(temp);
    throw err;
  }
}
