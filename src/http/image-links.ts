import type { Catalog } from '../catalog/catalog.js';
import type { Asset } from '../domain/asset.js';
import type { ImageUrls } from '../services/image-urls.js';

/** Makes the ready-made `/img` URLs an image's record carries (variants, srcset). */
export interface ImageLinks {
  src(query: Readonly<Record<string, string | number>>): string;
}

const DAY_SEC = 86400;

/**
 * A function giving the `/img` URLs for the record of a ready image (undefined for anything else),
 * made per request: it remembers the projects it looked up. Public projects get URLs without expiry
 * (they name a version, so they never change meaning). Private projects get URLs that expire at the
 * end of the next UTC day: every record fetched on the same day carries the same URL, so browsers
 * and CDNs can still cache them, and a leaked URL stops working within two days.
 */
export function imageLinker(deps: {
  catalog: Pick<Catalog, 'getProject'>;
  imageUrls: Pick<ImageUrls, 'imageUrl'>;
  now?: () => number;
}): (asset: Asset) => Promise<ImageLinks | undefined> {
  const visibility = new Map<string, Promise<string | undefined>>();
  return async (asset) => {
    if (asset.type !== 'image' || asset.status !== 'ready' || asset.deletedAt !== null) return undefined;
    let lookup = visibility.get(asset.projectId);
    if (!lookup) {
      lookup = deps.catalog.getProject(asset.projectId).then((p) => p?.visibility);
      visibility.set(asset.projectId, lookup);
    }
    const now = deps.now?.() ?? Math.floor(Date.now() / 1000);
    const expiresInSec =
      (await lookup) === 'private' ? (Math.floor(now / DAY_SEC) + 2) * DAY_SEC - now : undefined;
    return { src: (query) => deps.imageUrls.imageUrl(asset, query, { expiresInSec }) };
  };
}
