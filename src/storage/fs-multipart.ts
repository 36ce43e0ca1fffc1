import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { type BigIntStats, constants as fsConstants } from 'node:fs';
import { lstat, mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { AppError, isAppError } from '../errors.js';
import type { BlobInfo, UploadedPart } from './blob-store.js';
import {
  errnoCode,
  isAbsent,
  lstatFile,
  O_NOFOLLOW,
  sameFile,
  syncDir,
  tooLarge,
  unlinkQuiet,
  type Written,
  writeAll,
  writeBody,
  writeFileAtomicIn,
  writeNewFile,
} from './fs-io.js';
import { partSidecarPath, readPartSidecar } from './fs-sidecars.js';
import { assertValidKey } from './keys.js';
import { assertPartNumber, checkPartList, MAX_PART_NUMBER } from './part-rules.js';

/** Multipart folders untouched (no part written, no complete) for this long are abandoned. */
const STALE_MULTIPART_MS = 7 * 24 * 60 * 60 * 1000;
/** Part numbers, as in S3. */
/** The only upload ids this store accepts (and the shape of those it hands out): never a path. */
const UPLOAD_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** A part's data file is named by its part number, written canonically (no sign, no leading zero). */
const PART_FILE = /^[1-9][0-9]{0,4}$/;
/** The record of what a multipart upload will become, in its folder. */
const UPLOAD_RECORD = 'upload.json';
/** Read buffer for joining parts: bounds the memory a complete uses, whatever the part sizes. */
const COPY_CHUNK_BYTES = 1024 * 1024;

/** `upload.json` of one multipart upload. */
interface UploadRecord {
  key: string;
  contentType?: string | undefined;
  createdAt: string;
}

/** A part found in an upload folder, with the identity of the data file its etag describes. */
interface FoundPart extends UploadedPart {
  stats: BigIntStats;
}

/** What multipart uploads need from the store that owns them. */
export interface MultipartHost {
  /** The store's startup sweep: every operation waits for it so the two never race. */
  readonly sweep: Promise<void>;
  ensureDirs(): Promise<void>;
  objectPath(key: string): string;
  newTemp(): string;
  /** Commits the fsynced `temp` as the object at `key`, exactly like a put. */
  commit(
    key: string,
    target: string,
    temp: string,
    written: Written,
    contentType: string | undefined,
  ): Promise<BlobInfo>;
}

/**
 * The multipart uploads of an `FsBlobStore`, one folder each under `multipart/` (the layout, and
 * why it is safe under concurrency, is described on `FsBlobStore`).
 */
export class FsMultipart {
  constructor(
    private readonly multipartDir: string,
    private readonly host: MultipartHost,
  ) {}
  async createMultipart(key: string, options: { contentType?: string | undefined } = {}): Promise<string> {
    assertValidKey(key);
    await this.host.sweep;
    await this.host.ensureDirs();
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
    await this.host.sweep;
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
    await this.host.sweep;
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
    const target = this.host.objectPath(key);
    const wanted = checkPartList(parts);
    const dir = this.uploadDir(uploadId);
    await this.host.sweep;
    await this.host.ensureDirs();
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
    const temp = this.host.newTemp();
    let info: BlobInfo;
    try {
      // Again, now that nothing can change: a part may have been re-sent since the first check.
      const found = await this.findParts(claimed, wanted);
      const written = await joinParts(temp, claimed, found);
      info = await this.host.commit(key, target, temp, written, record.contentType);
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
    await this.host.sweep;
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
}

/** Removes upload folders (live, or claimed by a process that died) untouched for a week. */
export async function removeStaleUploads(multipartDir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(multipartDir);
  } catch {
    return;
  }
  const cutoff = Date.now() - STALE_MULTIPART_MS;
  for (const name of names) {
    const path = join(multipartDir, name);
    try {
      const stats = await lstat(path);
      if (stats.isDirectory() && stats.mtimeMs < cutoff) await rm(path, { recursive: true, force: true });
    } catch {
      // best-effort: the next start tries again
    }
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

function uploadNotFound(uploadId: unknown): AppError {
  const shown = typeof uploadId === 'string' && UPLOAD_ID.test(uploadId) ? ` ${uploadId}` : '';
  return new AppError('UPLOAD_NOT_FOUND', `No multipart upload${shown} is in progress for this key.`);
}
