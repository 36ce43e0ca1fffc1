import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  paginateListObjectsV2,
  S3Client,
} from '@aws-sdk/client-s3';
import { type MetadataValue, S3Store } from '@tus/s3-store';
import type { KvStore } from '@tus/utils';
import { isId } from '../domain/ids.js';
import { parseS3Location, s3ClientConfig } from '../storage/s3-location.js';
import type { TusStorage } from './tus-storage.js';

/**
 * A metadata cache for S3Store that keeps nothing, so every request reads `<id>.info` from the
 * bucket. S3Store's default (a MemoryKvStore) keeps every upload's metadata for the life of the
 * process (it only forgets an upload that completes through this very node, or is removed by it):
 * a leak, and wrong with several API nodes, because nothing tells node B that node A rewrote the
 * `.info` (an `Upload-Length` declared later under creation-defer-length): B would go on with its
 * cached size and never complete the upload. One GetObject per tus request is the price.
 */
const noMetadataCache: KvStore<MetadataValue> = {
  get: async () => undefined,
  set: async () => {},
  delete: async () => {},
};

/** `upl_<ulid>`, `upl_<ulid>.info`, `upl_<ulid>.part`: the objects of one tus upload on S3. */
const UPLOAD_SUFFIXES = ['', '.info', '.part'] as const;

/** The tus upload an object key belongs to (one of `UPLOAD_SUFFIXES`), or undefined for any other key. */
function uploadOfKey(key: string): string | undefined {
  const dot = key.indexOf('.');
  const id = dot < 0 ? key : key.slice(0, dot);
  const suffix = dot < 0 ? '' : key.slice(dot);
  return isId(id, 'upl') && (UPLOAD_SUFFIXES as readonly string[]).includes(suffix) ? id : undefined;
}

function errorName(err: unknown): string | undefined {
  const name = (err as { name?: unknown } | null)?.name;
  return typeof name === 'string' ? name : undefined;
}

function httpStatus(err: unknown): number | undefined {
  const status = (err as { $metadata?: { httpStatusCode?: unknown } } | null)?.$metadata?.httpStatusCode;
  return typeof status === 'number' ? status : undefined;
}

/**
 * tus uploads in progress in the bucket (@tus/s3-store: one S3 multipart upload per tus upload,
 * `<id>.info` for its metadata), so that any API node can take the next PATCH of an upload another
 * node started. Loaded only with `s3://` storage.
 */
export function createS3TusStorage(storage: string, expirationMs: number): TusStorage {
  const location = parseS3Location(storage);
  const Bucket = location.bucket;
  const client = new S3Client(s3ClientConfig(location));
  const datastore = new S3Store({
    // S3's own minimum; tus clients may send any chunk size, the store buffers up to a part.
    partSize: 8 * 1024 * 1024,
    expirationPeriodInMilliseconds: expirationMs,
    cache: noMetadataCache,
    s3ClientConfig: { ...s3ClientConfig(location), bucket: Bucket },
  });

  /** Deletes the upload's objects (deleting a missing object succeeds). */
  const deleteObjects = async (uploadId: string): Promise<void> => {
    for (const suffix of UPLOAD_SUFFIXES) {
      await client.send(new DeleteObjectCommand({ Bucket, Key: `${uploadId}${suffix}` }));
    }
  };

  /**
   * Aborts the upload's S3 multipart upload, whose id S3Store keeps in the metadata of `<id>.info`.
   * No `.info` (terminated: S3Store.remove deletes it but leaves `.part`), or an upload that was
   * completed or aborted already: nothing to abort.
   */
  const abortMultipart = async (uploadId: string): Promise<void> => {
    let multipartId: string | undefined;
    try {
      const info = await client.send(new HeadObjectCommand({ Bucket, Key: `${uploadId}.info` }));
      multipartId = info.Metadata?.['upload-id'];
    } catch (err) {
      if (httpStatus(err) === 404) return;
      throw err;
    }
    if (!multipartId) return;
    try {
      await client.send(new AbortMultipartUploadCommand({ Bucket, Key: uploadId, UploadId: multipartId }));
    } catch (err) {
      if (errorName(err) === 'NoSuchUpload' || httpStatus(err) === 404) return;
      throw err;
    }
  };

  /**
   * Not `server.cleanUpExpiredUploads()`: S3Store.deleteExpired lists every multipart upload in
   * the bucket and aborts all those older than the expiry, whoever made them (other applications
   * sharing the bucket, assetpipe's own S3 multipart sessions), and never removes a completed
   * upload. This lists only the `upl_` objects at the bucket root (an upload in progress always
   * has its `.info`; one that completed has its object too), and removes an upload once its
   * `.info` (rewritten at creation, at a deferred length and at completion), or else its oldest
   * object, is older than the expiry: @tus/server itself answers 410 for it by then.
   */
  const sweepExpired = async (expiryMs: number): Promise<number> => {
    if (!(expiryMs > 0)) return 0;
    const cutoff = Date.now() - expiryMs;
    let removed = 0;
    const failures: unknown[] = [];
    const sweep = async (uploadId: string, age: Date): Promise<void> => {
      if (age.getTime() > cutoff) return;
      try {
        await abortMultipart(uploadId);
        await deleteObjects(uploadId);
        removed++;
      } catch (err) {
        failures.push(err);
      }
    };
    // Keys come in byte order, so an upload's objects (`upl_X`, `upl_X.info`, `upl_X.part`) are
    // consecutive: each upload is handled once its last object is listed.
    let current: { uploadId: string; info: Date | undefined; oldest: Date } | undefined;
    const pages = paginateListObjectsV2({ client }, { Bucket, Prefix: 'upl_' });
    for await (const page of pages) {
      for (const object of page.Contents ?? []) {
        const uploadId = object.Key === undefined ? undefined : uploadOfKey(object.Key);
        if (uploadId === undefined) continue; // not ours, whatever its name
        const modified = object.LastModified ?? new Date();
        if (current?.uploadId !== uploadId) {
          if (current) await sweep(current.uploadId, current.info ?? current.oldest);
          current = { uploadId, info: undefined, oldest: modified };
        }
        if (object.Key?.endsWith('.info')) current.info = modified;
        if (modified < current.oldest) current.oldest = modified;
      }
    }
    if (current) await sweep(current.uploadId, current.info ?? current.oldest);
    if (failures.length > 0) {
      throw new AggregateError(
        failures,
        `Could not remove ${failures.length} expired tus upload(s) from bucket "${Bucket}" (${removed} removed).`,
      );
    }
    return removed;
  };

  return {
    datastore,
    open: (upload) => datastore.read(upload.id),
    exists: async (uploadId) => {
      try {
        await datastore.getUpload(uploadId);
        return true;
      } catch {
        return false;
      }
    },
    // Not `datastore.remove()`: it aborts the multipart upload first, which S3 answers with
    // NoSuchUpload once the upload was completed, and then deletes nothing.
    release: deleteObjects,
    sweepExpired,
    directory: undefined,
    shared: true,
  };
}
