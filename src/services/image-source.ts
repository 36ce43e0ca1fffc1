import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Catalog } from '../catalog/catalog.js';
import type { Asset, AssetVersion } from '../domain/asset.js';
import { AppError } from '../errors.js';
import type { BlobStore } from '../storage/blob-store.js';
import type { ImgTarget } from './image-request.js';

/** What /img needs of the catalog. */
export type ImageCatalog = Pick<Catalog, 'getAsset' | 'getVersion' | 'getProject' | 'listRenditions'> & {
  /** The version whose original is stored at `key` (engineer C's addition to the Catalog port). */
  findVersionByOriginalKey(key: string): Promise<AssetVersion | undefined>;
};

/**
 * The live image asset and the version a URL names (by asset id and `v`, default the current
 * version, or by an original's key). Unknown, deleted or non-image assets and unknown versions are
 * 404s that say which.
 */
export async function findImageVersion(
  catalog: ImageCatalog,
  target: ImgTarget,
  requestedVersion: number | null,
): Promise<{ asset: Asset; version: AssetVersion }> {
  let asset: Asset | undefined;
  let version: AssetVersion | undefined;
  if (target.kind === 'asset') {
    asset = await catalog.getAsset(target.assetId);
    if (asset) version = await catalog.getVersion(asset.id, requestedVersion ?? asset.versionNumber);
  } else {
    version = await catalog.findVersionByOriginalKey(target.key);
    if (version) asset = await catalog.getAsset(version.assetId);
  }
  const name = target.kind === 'asset' ? `asset ${target.assetId}` : `original ${target.key}`;
  if (!asset || asset.deletedAt !== null) {
    throw new AppError('ASSET_NOT_FOUND', `No ${name}.`);
  }
  if (!version) {
    throw new AppError(
      'NOT_FOUND',
      `Asset ${asset.id} has no version ${requestedVersion ?? asset.versionNumber}.`,
    );
  }
  if (version.type !== 'image') {
    throw new AppError(
      'ASSET_NOT_FOUND',
      `The ${name} is a ${version.type}, not an image; /img only serves images.`,
    );
  }
  return { asset, version };
}

/**
 * Calls `use` with a local file holding the object at `key`: the store's own file when it has one
 * (filesystem store: read in place, no copy), otherwise a temporary copy in `scratchDir`, removed
 * afterwards.
 */
export async function withLocalFile<T>(
  blobs: BlobStore,
  key: string,
  scratchDir: string,
  use: (path: string) => Promise<T>,
): Promise<T> {
  const local = blobs.localPath ? await blobs.localPath(key) : undefined;
  if (local !== undefined) return use(local);
  if (blobs.localPath) {
    // A store with local files that has no file for this key: the original is gone.
    throw new AppError('BLOB_NOT_FOUND', 'The original of this image is missing from storage.');
  }
  const temp = join(scratchDir, `img-${randomUUID()}`);
  try {
    await pipeline(await blobs.get(key), createWriteStream(temp, { flags: 'wx', mode: 0o600 }));
    return await use(temp);
  } finally {
    await unlink(temp).catch(() => {});
  }
}
