import type { Catalog } from '../catalog/catalog.js';
import type { Asset } from '../domain/asset.js';
import type { SigningKey } from '../domain/signing.js';
import { signStreamToken } from '../domain/stream-token.js';

/** Makes the URLs of a ready video's or audio's stream files (master, MPD, poster, storyboard…). */
export interface StreamLinks {
  /** The URL of `path` (relative to the package root, e.g. `master.m3u8`) of the current version. */
  url(path: string): string;
}

/** The delivery prefix of every stream file: `/stream/<assetId>/<version>/<token>/<path>`. */
export const STREAM_PATH_PREFIX = '/stream/';

const DAY_SEC = 86400;

export function streamPath(assetId: string, version: number, token: string, path: string): string {
  const encoded = path.split('/').map(encodeURIComponent).join('/');
  return `${STREAM_PATH_PREFIX}${encodeURIComponent(assetId)}/${version}/${token}/${encoded}`;
}

/**
 * A function giving the stream URLs for the record of a ready video or audio asset (undefined for
 * anything else), made per request. Public projects get a token without expiry (it names one
 * version, so it never changes meaning). Private projects get a token that expires at the end of
 * the next UTC day, as image links do: the same URL all day long, so players and CDNs can cache.
 */
export function streamLinker(deps: {
  catalog: Pick<Catalog, 'getProject'>;
  signingKeys: readonly SigningKey[];
  /** ASSETPIPE_PUBLIC_URL: makes URLs absolute. */
  publicUrl?: string | undefined;
  now?: () => number;
}): (asset: Asset) => Promise<StreamLinks | undefined> {
  const visibility = new Map<string, Promise<string | undefined>>();
  const base = deps.publicUrl?.replace(/\/+$/, '') ?? '';
  return async (asset) => {
    if (asset.type === 'image' || asset.status !== 'ready' || asset.deletedAt !== null) return undefined;
    let lookup = visibility.get(asset.projectId);
    if (!lookup) {
      lookup = deps.catalog.getProject(asset.projectId).then((p) => p?.visibility);
      visibility.set(asset.projectId, lookup);
    }
    const now = deps.now?.() ?? Math.floor(Date.now() / 1000);
    const expiresAt = (await lookup) === 'private' ? (Math.floor(now / DAY_SEC) + 2) * DAY_SEC : undefined;
    const token = signStreamToken(asset.id, asset.versionNumber, { keys: deps.signingKeys, expiresAt });
    return { url: (path) => `${base}${streamPath(asset.id, asset.versionNumber, token, path)}` };
  };
}

/** The linker's dependencies as a process's container holds them. */
export function streamLinkDeps(container: {
  catalog: Pick<Catalog, 'getProject'>;
  signingKeys: readonly SigningKey[];
  config: { publicUrl?: string | undefined };
}) {
  return {
    catalog: container.catalog,
    signingKeys: container.signingKeys,
    publicUrl: container.config.publicUrl,
  };
}
