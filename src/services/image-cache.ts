import { createHash } from 'node:crypto';
import { canonicalTransform, type OutputFormat, type TransformOptions } from '../domain/transform-options.js';
import { EXTENSIONS } from '../media/image-transform.js';
import type { BlobInfo, BlobStore } from '../storage/blob-store.js';
import { imageCacheKey, imageCachePrefix } from '../storage/keys.js';

/**
 * The blob-store key of one transform result: (asset, version, canonical options with the output
 * format decided). `anim` only counts for WebP output, the only one that keeps animation, so
 * `f=png&anim=1` and `f=png` share one object.
 */
export function transformCacheKey(
  assetId: string,
  version: number,
  options: TransformOptions,
  format: OutputFormat,
): string {
  const effective: TransformOptions = { ...options, format, animated: options.animated && format === 'webp' };
  const digest = createHash('sha256').update(canonicalTransform(effective)).digest('hex');
  return imageCacheKey(assetId, version, digest, EXTENSIONS[format]);
}

/**
 * Transform results kept in the blob store. Keys are deterministic and every write is an atomic
 * put, so two API nodes producing the same result at once both leave one correct object.
 */
export class ImageCache {
  constructor(private readonly blobs: BlobStore) {}

  head(key: string): Promise<BlobInfo | undefined> {
    return this.blobs.head(key);
  }

  put(key: string, data: Buffer, contentType: string): Promise<BlobInfo> {
    return this.blobs.put(key, data, { contentType });
  }

  /**
   * Deletes every cached transform of the asset (all versions); returns how many. Call it when
   * the asset is purged. Keys are listed first and deleted afterwards, so the listing never walks
   * folders that the deletes are pruning.
   */
  async forgetAsset(assetId: string): Promise<number> {
    const keys: string[] = [];
    for await (const info of this.blobs.list(imageCachePrefix(assetId))) keys.push(info.key);
    for (const key of keys) await this.blobs.delete(key);
    return keys.length;
  }
}
