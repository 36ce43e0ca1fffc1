import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
  PutObjectCommand,
  paginateListObjectsV2,
  paginateListParts,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { AppError } from '../errors.js';
import { asOutage } from '../lib/outage.js';
import type { BlobInfo, BlobStore, ByteRange, PutOptions, UploadedPart } from './blob-store.js';
import { toBytes, tooLarge, writeAll } from './fs-io.js';
import { assertValidKey, assertValidPrefix, keyProblem } from './keys.js';
import { assertPartNumber, checkPartList } from './part-rules.js';
import { bucketProblem, parseS3Location, type S3Timeouts, s3ClientConfig } from './s3-location.js';

export interface S3BlobStoreOptions {
  bucket: string;
  /** Prepended to every key: `''` or a valid key followed by `/`. @default '' */
  prefix?: string | undefined;
  /** An S3-compatible server (MinIO, Garage, R2, …). @default AWS S3 of `region` */
  endpoint?: string | undefined;
  region: string;
  /** Address the bucket in the path instead of the host name (most self-hosted servers need it). @default false */
  forcePathStyle?: boolean | undefined;
  /** @default the AWS SDK's provider chain: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, … */
  credentials?:
    | { accessKeyId: string; secretAccessKey: string; sessionToken?: string | undefined }
    | undefined;
  /**
   * Part size of the multipart uploads `put` makes for streams; a put buffers at most two parts.
   * S3 needs 5 MiB or more. @default 8 MiB
   */
  partSizeBytes?: number | undefined;
  /** Keys per ListObjectsV2 request (S3 answers at most 1000). @default 1000 */
  listPageSize?: number | undefined;
  /** Where `putPart` spools a stream of unknown length before sending it. @default os.tmpdir() */
  tempDir?: string | undefined;
  /** Network timeouts of each request (see `s3ClientConfig`). @default 3 s to connect, 60 s idle */
  timeouts?: S3Timeouts | undefined;
}

const MIB = 1024 * 1024;
const MIN_PART_SIZE = 5 * MIB;
const MAX_PART_SIZE = 5 * 1024 * MIB;
const MAX_KEY_BYTES = 1024;
/** SigV4 presigned URLs live at most a week. */
const MAX_PRESIGN_SECONDS = 7 * 24 * 60 * 60;
/** How many parts of one `put` are buffered and in flight at once. */
const PUT_QUEUE_SIZE = 2;

/**
 * A `BlobStore` on S3 or an S3-compatible server. Every object lives at `prefix + key` in `bucket`.
 *
 * - `put` of a stream is a multipart upload (`@aws-sdk/lib-storage`), so memory stays bounded
 *   whatever the length; a failed or oversized put aborts it and leaves nothing behind. S3 makes
 *   the object visible only once complete, which gives the port's atomicity.
 * - `putPart` of a stream spools it to a temp file first: UploadPart needs a Content-Length.
 * - `completeMultipart` lists the parts before completing, so a missing part or a wrong etag is
 *   reported by part number, and an upload that is already complete is `UPLOAD_NOT_FOUND` (S3
 *   itself may answer a repeated complete with success).
 * - S3 limits a whole key to 1024 bytes, so with a prefix the port's keys must be shorter: longer
 *   ones are `KEY_INVALID`.
 * - Errors the port does not name become an `AppError` naming the operation, bucket, endpoint and
 *   S3 error code: `UNAVAILABLE` when the server cannot be reached, times out, answers 5xx or asks
 *   to slow down, marked as an outage (`asOutage`) so that workers wait and the API answers 503;
 *   `CONFIG_INVALID` for a missing bucket, rejected credentials or an endpoint whose host name does
 *   not resolve; `INTERNAL` otherwise. A response body that fails mid-read (reset, idle timeout)
 *   errors with the socket's own error, marked as an outage too.
 *
 * The client is configured by `s3ClientConfig`, which sends checksums only where S3 requires them
 * (see there why). There is no `localPath`: callers fall back to `get`.
 */
export class S3BlobStore implements BlobStore {
  readonly bucket: string;
  readonly prefix: string;
  private readonly client: S3Client;
  /** The server, for messages. */
  private readonly where: string;
  private readonly partSizeBytes: number;
  private readonly listPageSize: number;
  private readonly tempDir: string;
  /** Upload ids this process is completing: a concurrent second complete is `UPLOAD_NOT_FOUND`. */
  private readonly completing = new Set<string>();

  constructor(options: S3BlobStoreOptions) {
    const { bucket, region, endpoint } = options;
    const bucketIssue = typeof bucket === 'string' ? bucketProblem(bucket) : 'it is missing';
    if (bucketIssue) {
      throw new AppError(
        'CONFIG_INVALID',
        `The S3 bucket name ${JSON.stringify(bucket)} is not valid: ${bucketIssue}.`,
      );
    }
    if (typeof region !== 'string' || region.trim() === '') {
      throw new AppError(
        'CONFIG_INVALID',
        'The S3 blob store needs a region (us-east-1 for most self-hosted servers).',
      );
    }
    const prefix = options.prefix ?? '';
    if (prefix !== '' && (!prefix.endsWith('/') || keyProblem(prefix.slice(0, -1)) !== undefined)) {
      throw new AppError(
        'CONFIG_INVALID',
        `The S3 key prefix ${JSON.stringify(prefix)} is not valid: expected "" or key segments ending in "/".`,
      );
    }
    this.partSizeBytes = options.partSizeBytes ?? 8 * MIB;
    if (
      !Number.isSafeInteger(this.partSizeBytes) ||
      this.partSizeBytes < MIN_PART_SIZE ||
      this.partSizeBytes > MAX_PART_SIZE
    ) {
      throw new AppError(
        'CONFIG_INVALID',
        `The S3 part size must be a whole number of bytes from 5 MiB to 5 GiB, got ${String(options.partSizeBytes)}.`,
      );
    }
    this.listPageSize = options.listPageSize ?? 1000;
    if (!Number.isInteger(this.listPageSize) || this.listPageSize < 1 || this.listPageSize > 1000) {
      throw new AppError(
        'CONFIG_INVALID',
        `The S3 list page size must be 1 to 1000, got ${String(options.listPageSize)}.`,
      );
    }
    this.bucket = bucket;
    this.prefix = prefix;
    this.tempDir = options.tempDir ?? tmpdir();
    this.where = endpoint ?? `AWS S3 (${region})`;
    this.client = new S3Client(
      s3ClientConfig(
        { region, endpoint, forcePathStyle: options.forcePathStyle ?? false },
        options.credentials,
        options.timeouts,
      ),
    );
  }

  async put(key: string, body: Readable | Uint8Array, options: PutOptions = {}): Promise<BlobInfo> {
    const Key = this.objectKey(key);
    const { maxBytes, contentType } = options;
    if (body instanceof Uint8Array) {
      if (maxBytes !== undefined && body.byteLength > maxBytes) throw tooLarge(maxBytes);
      try {
        const out = await this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key,
            Body: body,
            ContentLength: body.byteLength,
            ContentType: contentType,
          }),
        );
        return this.written(key, body.byteLength, out.ETag, contentType);
      } catch (err) {
        throw this.failure('PutObject', key, err);
      }
    }

    const counted = { bytes: 0, error: undefined as unknown };
    const upload = new Upload({
      client: this.client,
      params: {
        Bucket: this.bucket,
        Key,
        Body: Readable.from(countBytes(body, maxBytes, counted)),
        ContentType: contentType,
      },
      partSize: this.partSizeBytes,
      queueSize: PUT_QUEUE_SIZE,
      // Abort the multipart upload on any failure, so no parts linger (and are billed) in the bucket.
      leavePartsOnError: false,
    });
    try {
      const out = await upload.done();
      return this.written(key, counted.bytes, out.ETag, contentType);
    } catch (err) {
      body.destroy();
      // The body's own failure (its error, or UPLOAD_TOO_LARGE) is what the caller must see.
      if (counted.error !== undefined) throw counted.error;
      throw this.failure('PutObject', key, err);
    }
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    const Key = this.objectKey(key);
    if (range !== undefined && !wellFormed(range)) {
      // As on the filesystem, a missing object is BLOB_NOT_FOUND whatever the range.
      if ((await this.head(key)) === undefined) throw notFound(key);
      throw unsatisfiable(range);
    }
    let out: GetObjectCommandOutput;
    try {
      out = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key,
          Range: range === undefined ? undefined : `bytes=${range.start}-${range.end ?? ''}`,
        }),
      );
    } catch (err) {
      if (errorName(err) === 'NoSuchKey') throw notFound(key);
      if (errorName(err) === 'InvalidRange' || httpStatus(err) === 416) throw unsatisfiable(range);
      throw this.failure('GetObject', key, err);
    }
    const body = out.Body;
    if (!(body instanceof Readable)) {
      throw new AppError('INTERNAL', `S3 GetObject of ${JSON.stringify(key)} returned no readable body.`);
    }
    // The connection failing mid-body (a reset, the idle timeout) is an outage like any other; the
    // reader sees the same error object, marked. First listener, so it is marked before anyone reads it.
    body.prependListener('error', (err: unknown) => {
      if (err instanceof Error && networkCode(err) !== undefined) asOutage(err);
    });
    if (range !== undefined) {
      try {
        checkServedRange(range, out);
      } catch (err) {
        body.destroy();
        throw err;
      }
    }
    return body;
  }

  async head(key: string): Promise<BlobInfo | undefined> {
    const Key = this.objectKey(key);
    let out: HeadObjectCommandOutput;
    try {
      out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }));
    } catch (err) {
      // A HEAD answer has no body, so a missing bucket looks the same; put and get name it.
      if (httpStatus(err) === 404) return undefined;
      throw this.failure('HeadObject', key, err);
    }
    return {
      key,
      size: out.ContentLength ?? 0,
      etag: out.ETag ?? '',
      contentType: out.ContentType,
      lastModified: out.LastModified ?? new Date(),
    };
  }

  async delete(key: string): Promise<void> {
    const Key = this.objectKey(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }));
    } catch (err) {
      if (errorName(err) === 'NoSuchKey') return;
      throw this.failure('DeleteObject', key, err);
    }
  }

  async *list(prefix: string): AsyncGenerator<BlobInfo> {
    assertValidPrefix(prefix);
    const pages = paginateListObjectsV2(
      { client: this.client, pageSize: this.listPageSize },
      { Bucket: this.bucket, Prefix: this.prefix + prefix },
    );
    try {
      for await (const page of pages) {
        for (const object of page.Contents ?? []) {
          const key = object.Key?.slice(this.prefix.length);
          // Objects put in the bucket by other tools may have keys the port refuses: skip them.
          if (key === undefined || keyProblem(key) !== undefined) continue;
          yield {
            key,
            size: object.Size ?? 0,
            etag: object.ETag ?? '',
            contentType: undefined,
            lastModified: object.LastModified ?? new Date(0),
          };
        }
      }
    } catch (err) {
      throw this.failure('ListObjectsV2', prefix, err);
    }
  }

  async createMultipart(key: string, options: { contentType?: string | undefined } = {}): Promise<string> {
    const Key = this.objectKey(key);
    let uploadId: string | undefined;
    try {
      const out = await this.client.send(
        new CreateMultipartUploadCommand({ Bucket: this.bucket, Key, ContentType: options.contentType }),
      );
      uploadId = out.UploadId;
    } catch (err) {
      throw this.failure('CreateMultipartUpload', key, err);
    }
    if (!uploadId) {
      throw new AppError(
        'INTERNAL',
        `S3 CreateMultipartUpload of ${JSON.stringify(key)} returned no upload id.`,
      );
    }
    return uploadId;
  }

  async putPart(
    key: string,
    uploadId: string,
    partNumber: number,
    body: Readable | Uint8Array,
    options: { maxBytes?: number | undefined } = {},
  ): Promise<UploadedPart> {
    const Key = this.objectKey(key);
    assertPartNumber(partNumber);
    assertUploadId(uploadId);
    const { maxBytes } = options;
    if (body instanceof Uint8Array) {
      if (maxBytes !== undefined && body.byteLength > maxBytes) throw tooLarge(maxBytes);
      return this.uploadPart(key, Key, uploadId, partNumber, body, body.byteLength);
    }
    const spooled = await spool(body, maxBytes, join(this.tempDir, `assetpipe-s3-part-${randomUUID()}`));
    const stream = createReadStream(spooled.path);
    try {
      return await this.uploadPart(key, Key, uploadId, partNumber, stream, spooled.size);
    } finally {
      stream.destroy();
      await unlink(spooled.path).catch(() => undefined);
    }
  }

  async listParts(key: string, uploadId: string): Promise<UploadedPart[]> {
    const Key = this.objectKey(key);
    assertUploadId(uploadId);
    const parts: UploadedPart[] = [];
    try {
      const pages = paginateListParts(
        { client: this.client },
        { Bucket: this.bucket, Key, UploadId: uploadId },
      );
      for await (const page of pages) {
        for (const part of page.Parts ?? []) {
          if (part.PartNumber === undefined || part.ETag === undefined) continue;
          parts.push({ partNumber: part.PartNumber, etag: part.ETag, size: part.Size ?? 0 });
        }
      }
    } catch (err) {
      if (errorName(err) === 'NoSuchUpload') throw uploadNotFound(uploadId);
      throw this.failure('ListParts', key, err);
    }
    return parts.sort((a, b) => a.partNumber - b.partNumber);
  }

  async completeMultipart(
    key: string,
    uploadId: string,
    parts: ReadonlyArray<{ partNumber: number; etag: string }>,
  ): Promise<BlobInfo> {
    const Key = this.objectKey(key);
    const wanted = checkPartList(parts);
    assertUploadId(uploadId);
    if (this.completing.has(uploadId)) throw uploadNotFound(uploadId);
    this.completing.add(uploadId);
    try {
      // Check the list against what S3 holds first: its InvalidPart does not say which part.
      const held = new Map((await this.listParts(key, uploadId)).map((part) => [part.partNumber, part]));
      const joined: UploadedPart[] = [];
      for (const { partNumber, etag } of wanted) {
        const part = held.get(partNumber);
        if (!part) throw new AppError('VALIDATION_FAILED', `Part ${partNumber} was not uploaded.`);
        if (unquote(part.etag) !== unquote(etag)) {
          throw new AppError(
            'VALIDATION_FAILED',
            `Part ${partNumber} does not match the etag given for it (it was re-sent, or the etag is wrong).`,
          );
        }
        joined.push(part);
      }
      let etag: string | undefined;
      try {
        const out = await this.client.send(
          new CompleteMultipartUploadCommand({
            Bucket: this.bucket,
            Key,
            UploadId: uploadId,
            MultipartUpload: { Parts: joined.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag })) },
          }),
        );
        etag = out.ETag;
      } catch (err) {
        const name = errorName(err);
        if (name === 'NoSuchUpload') throw uploadNotFound(uploadId);
        if (name === 'InvalidPart' || name === 'InvalidPartOrder' || name === 'EntityTooSmall') {
          throw new AppError(
            'VALIDATION_FAILED',
            `S3 refused the part list (${name}): every listed part must be uploaded with that etag, and every part but the last at least 5 MiB.`,
            { cause: err },
          );
        }
        throw this.failure('CompleteMultipartUpload', key, err);
      }
      const size = joined.reduce((sum, part) => sum + part.size, 0);
      // The content type was given to createMultipart, maybe by another process: read it back,
      // unless a concurrent put has replaced the object already.
      const head = await this.head(key);
      if (head && etag !== undefined && head.etag === etag) return head;
      return this.written(key, size, etag, undefined);
    } finally {
      this.completing.delete(uploadId);
    }
  }

  async abortMultipart(key: string, uploadId: string): Promise<void> {
    const Key = this.objectKey(key);
    if (typeof uploadId !== 'string' || uploadId === '') return;
    try {
      await this.client.send(
        new AbortMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId: uploadId }),
      );
    } catch (err) {
      if (errorName(err) === 'NoSuchUpload' || httpStatus(err) === 404) return;
      throw this.failure('AbortMultipartUpload', key, err);
    }
  }

  async presignPart(
    key: string,
    uploadId: string,
    partNumber: number,
    expiresInSec: number,
  ): Promise<string> {
    const Key = this.objectKey(key);
    assertPartNumber(partNumber);
    assertUploadId(uploadId);
    if (!Number.isInteger(expiresInSec) || expiresInSec < 1 || expiresInSec > MAX_PRESIGN_SECONDS) {
      throw new AppError(
        'VALIDATION_FAILED',
        `A presigned URL must expire in 1 to ${MAX_PRESIGN_SECONDS} seconds, got ${String(expiresInSec)}.`,
      );
    }
    try {
      return await getSignedUrl(
        this.client,
        new UploadPartCommand({ Bucket: this.bucket, Key, UploadId: uploadId, PartNumber: partNumber }),
        { expiresIn: expiresInSec },
      );
    } catch (err) {
      throw this.failure('presign UploadPart', key, err);
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  /** The object key in the bucket; `KEY_INVALID` before any I/O when the key cannot be one. */
  private objectKey(key: string): string {
    assertValidKey(key);
    const full = this.prefix + key;
    if (Buffer.byteLength(full, 'utf8') > MAX_KEY_BYTES) {
      throw new AppError(
        'KEY_INVALID',
        `Invalid blob key ${JSON.stringify(key)}: with the prefix ${JSON.stringify(this.prefix)} it is longer than S3's ${MAX_KEY_BYTES} bytes.`,
      );
    }
    return full;
  }

  private async uploadPart(
    key: string,
    Key: string,
    uploadId: string,
    partNumber: number,
    body: Readable | Uint8Array,
    size: number,
  ): Promise<UploadedPart> {
    let etag: string | undefined;
    try {
      const out = await this.client.send(
        new UploadPartCommand({
          Bucket: this.bucket,
          Key,
          UploadId: uploadId,
          PartNumber: partNumber,
          Body: body,
          ContentLength: size,
        }),
      );
      etag = out.ETag;
    } catch (err) {
      if (errorName(err) === 'NoSuchUpload') throw uploadNotFound(uploadId);
      throw this.failure('UploadPart', key, err);
    }
    if (!etag) throw new AppError('INTERNAL', `S3 UploadPart of ${JSON.stringify(key)} returned no ETag.`);
    return { partNumber, etag, size };
  }

  /** What a successful write reports: S3's own answer, not a later HEAD a concurrent write may change. */
  private written(
    key: string,
    size: number,
    etag: string | undefined,
    contentType: string | undefined,
  ): BlobInfo {
    if (!etag) throw new AppError('INTERNAL', `S3 stored ${JSON.stringify(key)} but returned no ETag.`);
    return { key, size, etag, contentType, lastModified: new Date() };
  }

  /** An `AppError` for an S3 failure the port has no code for, saying where and what. */
  private failure(operation: string, key: string, err: unknown): AppError {
    if (err instanceof AppError) return err;
    const target = `bucket "${this.bucket}" at ${this.where}`;
    const network = networkCode(err);
    if (network === 'ENOTFOUND') {
      // As in `isOutage`: a host name that does not resolve is a setting to fix, not to wait out.
      return new AppError(
        'CONFIG_INVALID',
        `Cannot reach the S3 server for ${target}: its host name does not resolve (ENOTFOUND); check the endpoint and region in the storage URL.`,
        { cause: err },
      );
    }
    if (network) {
      return asOutage(
        new AppError(
          'UNAVAILABLE',
          `Cannot reach the S3 server for ${target} (${network}): check the endpoint and that the server is up.`,
          { cause: err },
        ),
      );
    }
    const name = errorName(err) ?? 'an unknown error';
    const status = httpStatus(err);
    const hint = HINTS[name];
    const answered = `S3 ${operation} of ${JSON.stringify(key)} in ${target} failed with ${name}${status ? ` (HTTP ${status})` : ''}`;
    if (hint) return new AppError('CONFIG_INVALID', `${answered}: ${hint}.`, { cause: err });
    if ((status !== undefined && (status >= 500 || status === 429)) || BUSY_CODES.has(name)) {
      return asOutage(new AppError('UNAVAILABLE', `${answered}; try again later.`, { cause: err }));
    }
    return new AppError('INTERNAL', `${answered}: ${errorMessageOf(err)}`, { cause: err });
  }
}

/** A store for an `s3://bucket[/prefix]?endpoint=…&region=…&forcePathStyle=…` URL (see `parseS3Location`). */
export function s3BlobStoreFromUrl(
  url: string,
  extra: Omit<S3BlobStoreOptions, 'bucket' | 'prefix' | 'endpoint' | 'region' | 'forcePathStyle'> = {},
): S3BlobStore {
  return new S3BlobStore({ ...parseS3Location(url), ...extra });
}

/** S3 error codes that mean the configuration (bucket, credentials, region) is wrong, with what to do. */
const HINTS: Record<string, string> = {
  NoSuchBucket: 'the bucket does not exist; create it or fix the bucket in the storage URL',
  AccessDenied: 'the credentials may not use this bucket; check them and the bucket policy',
  InvalidAccessKeyId: 'the server does not know this access key; check AWS_ACCESS_KEY_ID',
  SignatureDoesNotMatch: 'check AWS_SECRET_ACCESS_KEY, and the region in the storage URL',
  AuthorizationHeaderMalformed: 'check the region in the storage URL',
  PermanentRedirect: 'the bucket is in another region or needs another endpoint; check the storage URL',
  ExpiredToken: 'the session token has expired; renew the credentials',
  InvalidToken: 'the session token is not valid; renew the credentials',
  CredentialsProviderError:
    'no credentials were found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)',
};

/**
 * S3 answers that mean "busy or briefly unwell, try again", whatever their HTTP status: SlowDown
 * and ServiceUnavailable are 503 on AWS but not on every S3-compatible server; RequestTimeout is
 * S3's 400 for a request body that stalled.
 */
const BUSY_CODES = new Set([
  'SlowDown',
  'ServiceUnavailable',
  'InternalError',
  'RequestTimeout',
  'TooManyRequests',
  'Throttling',
  'ThrottlingException',
]);

/** Errors of the connection itself (not an S3 answer), by Node error code. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
]);

function networkCode(err: unknown): string | undefined {
  for (let current = err, depth = 0; current && depth < 5; depth++) {
    const { code, name, errors, cause } = current as {
      code?: unknown;
      name?: unknown;
      errors?: unknown;
      cause?: unknown;
    };
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return code;
    if (name === 'TimeoutError') return 'timed out';
    // Node tries every address of a host name and reports them all in an AggregateError.
    if (Array.isArray(errors)) {
      const inner = errors.map(networkCode).find((c) => c !== undefined);
      if (inner) return inner;
    }
    current = cause;
  }
  return undefined;
}

/** The S3 error code (the SDK puts it in `name`). */
function errorName(err: unknown): string | undefined {
  const name = (err as { name?: unknown } | null)?.name;
  return typeof name === 'string' ? name : undefined;
}

function httpStatus(err: unknown): number | undefined {
  const status = (err as { $metadata?: { httpStatusCode?: unknown } } | null)?.$metadata?.httpStatusCode;
  return typeof status === 'number' ? status : undefined;
}

function errorMessageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The body, counted: fails with `UPLOAD_TOO_LARGE` past `maxBytes`, and records the body's own error. */
async function* countBytes(
  body: Readable,
  maxBytes: number | undefined,
  counted: { bytes: number; error: unknown },
): AsyncGenerator<Uint8Array> {
  try {
    // Leaving this loop early (an error, or the consumer stopping) destroys `body`.
    for await (const chunk of body) {
      const bytes = toBytes(chunk);
      counted.bytes += bytes.byteLength;
      if (maxBytes !== undefined && counted.bytes > maxBytes) throw tooLarge(maxBytes);
      yield bytes;
    }
  } catch (err) {
    counted.error = err;
    throw err;
  }
}

/** Writes `body` to a new file at `path`, failing (and removing it) past `maxBytes`. */
async function spool(
  body: Readable,
  maxBytes: number | undefined,
  path: string,
): Promise<{ path: string; size: number }> {
  let size = 0;
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(path, 'wx', 0o600);
    for await (const chunk of body) {
      const bytes = toBytes(chunk);
      size += bytes.byteLength;
      if (maxBytes !== undefined && size > maxBytes) throw tooLarge(maxBytes);
      await writeAll(handle, bytes);
    }
    await handle.close();
    return { path, size };
  } catch (err) {
    body.destroy();
    await handle?.close().catch(() => undefined);
    await unlink(path).catch(() => undefined);
    throw err;
  }
}

/** A range the port can serve from some object: whole non-negative numbers, start <= end. */
function wellFormed({ start, end }: ByteRange): boolean {
  return (
    Number.isSafeInteger(start) &&
    start >= 0 &&
    (end === undefined || (Number.isSafeInteger(end) && end >= start))
  );
}

/**
 * Checks that the server served the range asked for. Servers differ on an empty object: S3 answers
 * 416, others 200 or a 206 of nothing; the port says no range of an empty object is satisfiable.
 */
function checkServedRange(range: ByteRange, out: GetObjectCommandOutput): void {
  const served =
    out.ContentRange === undefined ? undefined : /^bytes (\d+)-(\d+)\/(\d+)$/.exec(out.ContentRange);
  const total = served ? Number(served[3]) : out.ContentRange === undefined ? out.ContentLength : undefined;
  if (total !== undefined && range.start >= total) throw unsatisfiable(range, total);
  if (out.ContentRange === undefined) {
    // A 200 of the whole object is only right when the range covers all of it.
    const whole =
      range.start === 0 && (range.end === undefined || (total !== undefined && range.end >= total - 1));
    if (!whole) {
      throw new AppError('INTERNAL', 'The S3 server ignored the Range header and sent the whole object.');
    }
  }
}

function assertUploadId(uploadId: string): void {
  if (typeof uploadId !== 'string' || uploadId === '') throw uploadNotFound(uploadId);
}

/** Etags compare with or without their quotes (clients often strip them). */
function unquote(etag: string): string {
  return etag.length >= 2 && etag.startsWith('"') && etag.endsWith('"') ? etag.slice(1, -1) : etag;
}

function notFound(key: string): AppError {
  return new AppError('BLOB_NOT_FOUND', `No blob is stored under ${JSON.stringify(key)}.`);
}

function unsatisfiable(range: ByteRange | undefined, size?: number): AppError {
  const shown = range === undefined ? '' : ` ${range.start}-${range.end ?? ''}`;
  const of = size === undefined ? '' : ` for a blob of ${size} bytes`;
  return new AppError('RANGE_NOT_SATISFIABLE', `The range${shown} cannot be satisfied${of}.`);
}

function uploadNotFound(uploadId: unknown): AppError {
  const shown = typeof uploadId === 'string' && /^[\w.-]{1,128}$/.test(uploadId) ? ` ${uploadId}` : '';
  return new AppError('UPLOAD_NOT_FOUND', `No multipart upload${shown} is in progress for this key.`);
}
