import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { FileStore } from '@tus/file-store';
import type { DataStore, Upload } from '@tus/utils';

/** Where tus keeps uploads in progress, and what the route needs from it beyond @tus/server's API. */
export interface TusStorage {
  datastore: DataStore;
  /** The complete bytes of a finished upload. */
  open(upload: Upload): Promise<Readable>;
  /** Whether the store still holds the upload (expired and terminated ones are gone). */
  exists(uploadId: string): Promise<boolean>;
  /**
   * Called once the asset holds the bytes, or once the finish hook refused them for good. On S3 the
   * upload is a second full copy in the bucket that nothing in the catalog points at, so it goes
   * now; on disk it stays until it expires, so that a client's repeated HEAD still finds it.
   */
  release(uploadId: string): Promise<void>;
  /**
   * Removes uploads older than `expirationMs`, in progress or finished (the datastores' own sweeps
   * keep finished uploads forever, and @tus/s3-store's aborts every multipart upload in the
   * bucket), and returns how many.
   */
  sweepExpired(expirationMs: number): Promise<number>;
  /** Where tus writes on local disk, or undefined when uploads go straight to S3. */
  directory: string | undefined;
  /** Whether other API nodes see these uploads (S3): their locks must then be shared too. */
  shared: boolean;
}

/**
 * The tus datastore for the configured storage. With `s3://` storage, uploads in progress live in
 * the same bucket (@tus/s3-store: one S3 multipart upload per tus upload, `<id>.info` for its
 * metadata), so any API node can take the next PATCH of an upload another node started.
 */
export async function createTusStorage(
  storage: string,
  directory: string,
  expirationMs: number,
): Promise<TusStorage> {
  if (storage.startsWith('s3://')) {
    // The AWS SDK and @tus/s3-store load only when used: the embedded mode never needs them.
    const { createS3TusStorage } = await import('./tus-s3-storage.js');
    return createS3TusStorage(storage, expirationMs);
  }
  const datastore = new FileStore({ directory, expirationPeriodInMilliseconds: expirationMs });
  return {
    datastore,
    open: async (upload) => createReadStream(upload.storage?.path ?? join(directory, upload.id)),
    exists: async (uploadId) => (await datastore.configstore.get(uploadId)) !== undefined,
    release: async () => {},
    // @tus/file-store's own sweep skips finished uploads (size == offset), so the copy of every file
    // that became an asset would stay on disk for good: past the expiry, those go too.
    sweepExpired: async (olderThanMs) => {
      const removed = await datastore.deleteExpired();
      let finished = 0;
      const cutoff = Date.now() - olderThanMs;
      for (const id of (await datastore.configstore.list?.()) ?? []) {
        const info = await datastore.configstore.get(id).catch(() => undefined);
        if (!info || info.size === undefined || info.size !== info.offset) continue;
        const created = info.creation_date ? Date.parse(info.creation_date) : Number.NaN;
        if (!(created < cutoff)) continue;
        await datastore.remove(id).catch(() => {}); // gone meanwhile: nothing to do
        finished++;
      }
      return removed + finished;
    },
    directory,
    shared: false,
  };
}
