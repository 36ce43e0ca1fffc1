import type { Readable } from 'node:stream';

/** What a store knows about one stored object. */
export interface BlobInfo {
  key: string;
  /** Bytes. */
  size: number;
  /** An opaque validator that changes whenever the bytes change (quoted or not is the store's choice). */
  etag: string;
  contentType?: string | undefined;
  lastModified: Date;
}

/** Inclusive byte range, as in HTTP `Range: bytes=start-end`. `end` defaults to the last byte. */
export interface ByteRange {
  start: number;
  end?: number | undefined;
}

export interface PutOptions {
  contentType?: string | undefined;
  /**
   * Reject the write (and store nothing) once more than this many bytes arrive.
   * The store throws `AppError('UPLOAD_TOO_LARGE')`.
   */
  maxBytes?: number | undefined;
}

export interface UploadedPart {
  /** 1..10000, as in S3. */
  partNumber: number;
  /** Opaque validator of the part's bytes; `completeMultipart` must be given it back. */
  etag: string;
  size: number;
}

/**
 * The blob-store port: every byte assetpipe keeps lives behind it.
 *
 * Contract (proved for every adapter by `test/contract/blob-store.contract.ts`):
 * - keys are validated by `assertValidKey` before any I/O: relative, `/`-separated, no `..` or `.`
 *   segments, no empty segments, no control characters, at most 1024 bytes;
 * - `put` is atomic: readers see the old object or the complete new one, never a partial write;
 *   if the body stream errors or exceeds `maxBytes`, nothing is left behind;
 * - `get` of a missing key throws `AppError('BLOB_NOT_FOUND')`; a range past the end throws
 *   `AppError('RANGE_NOT_SATISFIABLE')`;
 * - `delete` of a missing key is not an error;
 * - `list(prefix)` yields every object whose key starts with `prefix`, in key order;
 * - multipart: parts (1..10000) may arrive in any order and in parallel, re-sending a part
 *   replaces it, nothing is visible at `key` until `completeMultipart`, which joins the listed
 *   parts in part-number order atomically and removes them; an unknown or finished upload id gives
 *   `AppError('UPLOAD_NOT_FOUND')`, a listed part that is missing or whose etag differs gives
 *   `AppError('VALIDATION_FAILED')`; `abortMultipart` removes every part and is idempotent.
 *   (S3 also requires every part but the last to be at least 5 MiB; clients should assume it.)
 */
export interface BlobStore {
  /** Stores the whole body under `key`, replacing any previous object. */
  put(key: string, body: Readable | Uint8Array, options?: PutOptions): Promise<BlobInfo>;
  /** Streams the object, or the inclusive byte range of it. */
  get(key: string, range?: ByteRange): Promise<Readable>;
  /** Metadata of the object, or `undefined` when there is none. */
  head(key: string): Promise<BlobInfo | undefined>;
  delete(key: string): Promise<void>;
  list(prefix: string): AsyncIterable<BlobInfo>;

  /** Starts a multipart upload that will become the object at `key`; returns its upload id. */
  createMultipart(key: string, options?: { contentType?: string | undefined }): Promise<string>;
  putPart(
    key: string,
    uploadId: string,
    partNumber: number,
    body: Readable | Uint8Array,
    options?: { maxBytes?: number | undefined },
  ): Promise<UploadedPart>;
  /** The parts received so far, by part number. */
  listParts(key: string, uploadId: string): Promise<UploadedPart[]>;
  completeMultipart(
    key: string,
    uploadId: string,
    parts: ReadonlyArray<{ partNumber: number; etag: string }>,
  ): Promise<BlobInfo>;
  abortMultipart(key: string, uploadId: string): Promise<void>;
  /**
   * A URL a client can `PUT` one part to directly, valid for `expiresInSec`. Only stores that can
   * sign their own URLs (S3) implement it; otherwise assetpipe hands out HMAC-signed URLs to itself.
   */
  presignPart?(key: string, uploadId: string, partNumber: number, expiresInSec: number): Promise<string>;

  /**
   * A local file holding the object's bytes, to be read in place and never written, or `undefined`
   * when there is no such object. Optional: only a store on the local filesystem has it (sharp then
   * reads an original without a copy); callers fall back to `get` into a temp file.
   */
  localPath?(key: string): Promise<string | undefined>;

  /** Releases resources (connections, timers). */
  close(): Promise<void>;
}
