import { createHash } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BlobInfo } from './blob-store.js';
import { inside, isAbsent } from './fs-io.js';

/** What the sidecar of one stored file records (everything else comes from `lstat` of the file). */
export interface Sidecar {
  key: string;
  sha256: string;
  contentType?: string | undefined;
}

/** Where the sidecar of the object at `key` whose data file has these `stats` lives, under `meta/`. */
export function objectSidecarPath(metaDir: string, key: string, stats: BigIntStats): string {
  const h = createHash('sha256').update(key, 'utf8').digest('hex');
  const name = `${h}-${stats.ino}-${stats.size}-${stats.mtimeNs}.json`;
  return inside(metaDir, join(metaDir, h.slice(0, 2), name));
}

/** The sidecar written for exactly the data file with these `stats`; `undefined` when missing or unusable. */
export async function readObjectSidecar(
  metaDir: string,
  key: string,
  stats: BigIntStats,
): Promise<Sidecar | undefined> {
  let text: string;
  try {
    text = await readFile(objectSidecarPath(metaDir, key, stats), 'utf8');
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

export function toInfo(key: string, stats: BigIntStats, sidecar: Sidecar | undefined): BlobInfo {
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

/** The sha256 sidecar of one part file, named by the identity of that file, in its upload folder. */
export function partSidecarPath(dir: string, partNumber: number, stats: BigIntStats): string {
  return join(dir, `${partNumber}.${stats.ino}-${stats.size}-${stats.mtimeNs}.sha256`);
}

export async function readPartSidecar(path: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (isAbsent(err)) return undefined;
    throw err;
  }
  return /^[0-9a-f]{64}$/.test(text) ? text : undefined;
}
