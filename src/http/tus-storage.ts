import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { DeleteObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { FileStore } from '@tus/file-store';
import { S3Store } from '@tus/s3-store';
import type { DataStore, Upload } from '@tus/utils';
import { parseS3Location, s3ClientConfig } from '../storage/s3-location.js';

/** Where tus keeps uploads in progress, and what the route needs from it beyond @tus/server's API. */
export interface TusStorage {
  datastore: DataStore;
  /** The complete bytes of a finished upload. */
  open(upload: Upload): Promise<Readable>;
  /** Whether the store still holds the upload (expired and terminated ones are gone). */
  exists(uploadId: string): Promise<boolean>;
  /**
   * Called once the asset holds the bytes. On S3 the upload is a second full copy in the bucket that
   * nothing in the catalog points at, so it goes now; on disk it stays until it expires, so that a
   * client's repeated HEAD still finds it.
   */
  release(uploadId: string): Promise<void>;
  /** Where tus writes on local disk, or undefined when uploads go straight to S3. */
  directory: string | undefined;
}

/**
 * The tus datastore for the configured storage. With `s3://` storage, uploads in progress live in
 * the same bucket (@tus/s3-store: one S3 multipart upload per tus upload, `<id>.info` for its
 * metadata), so any API node can take the next PATCH of an upload another node started.
 */
export function createTusStorage(storage: string, directory: string, expirationMs: number): TusStorage {
  if (storage.startsWith('s3://')) {
    const location = parseS3Location(storage);
    const client = new S3Client(s3ClientConfig(location));
    const datastore = new S3Store({
      // S3's own minimum; tus clients may send any chunk size, the store buffers up to a part.
      partSize: 8 * 1024 * 1024,
      expirationPeriodInMilliseconds: expirationMs,
      s3ClientConfig: { ...s3ClientConfig(location), bucket: location.bucket },
    });
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
      release: async (uploadId) => {
        for (const key of [uploadId, `${uploadId}.info`, `${uploadId}.part`]) {
          await client.send(new DeleteObjectCommand({ Bucket: location.bucket, Key: key }));
        }
      },
      directory: undefined,
    };
  }
  const datastore = new FileStore({ directory, expirationPeriodInMilliseconds: expirationMs });
  return {
    datastore,
    open: async (upload) => createReadStream(upload.storage?.path ?? join(directory, upload.id)),
    exists: async (uploadId) => (await datastore.configstore.get(uploadId)) !== undefined,
    release: async () => {},
    directory,
  };
}
