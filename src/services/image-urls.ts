import type { Principal } from '../domain/api-key.js';
import type { Asset } from '../domain/asset.js';
import type { ImagePreset } from '../domain/image-presets.js';
import { type SigningKey, signUrl } from '../domain/signing.js';
import { AppError } from '../errors.js';
import { IMG_PATH_PREFIX, parseImgUrl, transformOptionsOf } from './image-request.js';
import { findImageVersion, type ImageCatalog } from './image-source.js';

export interface ImageUrlsOptions {
  catalog: ImageCatalog;
  /** The first signs. */
  signingKeys: readonly SigningKey[];
  presets: readonly ImagePreset[];
  maxOutputSide: number;
  /** ASSETPIPE_PUBLIC_URL: makes URLs absolute. */
  publicUrl?: string | undefined;
  /** Unix seconds. @default the clock */
  now?: () => number;
}

export interface SignedImageUrl {
  url: string;
  /** ISO time, or null for a URL that does not expire. */
  expiresAt: string | null;
}

/** How long a signed URL of a private project's image lives when the caller gives no expiry. */
export const PRIVATE_DEFAULT_EXPIRY_SEC = 86400;

/** Longest validity a signed /img URL may be given: one year, as long as caches keep the result. */
export const MAX_EXPIRES_IN_SEC = 365 * 86400;

/**
 * Signed `/img` URLs: ready-made ones for asset records (`imageUrl`), and the checked signing behind
 * `POST /v1/img/sign` and `assetpipe sign-url` (`sign`). Every URL carries `v`, the version it
 * shows, so a new version gets new URLs instead of hiding behind an immutable cached one.
 */
export class ImageUrls {
  private readonly now: () => number;

  constructor(private readonly options: ImageUrlsOptions) {
    this.now = options.now ?? (() => Math.floor(Date.now() / 1000));
  }

  /**
   * A signed URL of the asset's current version with these transform parameters (e.g.
   * `{ w: 400, f: 'webp' }`, or `{ preset: 'thumb', f: 'auto' }`). Absolute when a public URL is
   * configured (or `baseUrl` is given), else a path. Throws TRANSFORM_INVALID for bad parameters.
   */
  imageUrl(
    asset: Pick<Asset, 'id' | 'versionNumber'>,
    query: Readonly<Record<string, string | number>> = {},
    options: { expiresInSec?: number | undefined; baseUrl?: string | undefined } = {},
  ): string {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) params.set(name, String(value));
    params.set('v', String(asset.versionNumber));
    const path = `${IMG_PATH_PREFIX}${encodeURIComponent(asset.id)}?${params}`;
    const url = parseImgUrl(path.slice(0, path.indexOf('?')), params.toString());
    transformOptionsOf(url, this.options.presets, this.limits());
    return this.signed(path, options.expiresInSec, options.baseUrl).url;
  }

  /**
   * Signs `pathAndQuery` (`/img/<asset id>?w=400&f=webp`) for a caller: the transform query must
   * be valid, the asset must be a live image the caller's key may see (another project's asset is
   * a 404, as everywhere), and `v` is added when missing. `principal` null: the command line,
   * which has the data directory and so every right.
   */
  async sign(
    principal: Principal | null,
    pathAndQuery: string,
    options: { expiresInSec?: number | undefined; baseUrl?: string | undefined } = {},
  ): Promise<SignedImageUrl> {
    const mark = pathAndQuery.indexOf('?');
    const path = mark < 0 ? pathAndQuery : pathAndQuery.slice(0, mark);
    const rawQuery = mark < 0 ? '' : pathAndQuery.slice(mark + 1);
    if (!path.startsWith(IMG_PATH_PREFIX) || pathAndQuery.includes('#')) {
      throw new AppError(
        'URL_INVALID',
        `Only /img URLs can be signed here (e.g. /img/<asset id>?w=400&f=webp); got ${JSON.stringify(pathAndQuery.slice(0, 100))}.`,
      );
    }
    const url = parseImgUrl(path, rawQuery);
    transformOptionsOf(url, this.options.presets, this.limits());
    const { asset, version } = await findImageVersion(this.options.catalog, url.target, url.version);
    if (principal?.projectId != null && asset.projectId !== principal.projectId) {
      // As for every other asset route: another project's asset does not exist for this key.
      throw new AppError('ASSET_NOT_FOUND', `No asset ${asset.id}.`);
    }
    const params = new URLSearchParams(rawQuery);
    if (url.target.kind === 'asset' && url.version === null) params.set('v', String(version.version));
    // Private projects are delivered only through expiring URLs: a day unless the caller says.
    const project = await this.options.catalog.getProject(asset.projectId);
    const expiresInSec =
      options.expiresInSec ?? (project?.visibility === 'private' ? PRIVATE_DEFAULT_EXPIRY_SEC : undefined);
    return this.signed(`${path}?${params}`, expiresInSec, options.baseUrl);
  }

  private signed(
    pathAndQuery: string,
    expiresInSec: number | undefined,
    baseUrl: string | undefined,
  ): SignedImageUrl {
    if (
      expiresInSec !== undefined &&
      !(Number.isInteger(expiresInSec) && expiresInSec >= 1 && expiresInSec <= MAX_EXPIRES_IN_SEC)
    ) {
      throw new AppError(
        'VALIDATION_FAILED',
        `expiresIn must be whole seconds from 1 to ${MAX_EXPIRES_IN_SEC}; got ${String(expiresInSec)}.`,
      );
    }
    const expiresAt = expiresInSec === undefined ? undefined : this.now() + expiresInSec;
    const signed = signUrl(pathAndQuery, { keys: this.options.signingKeys, expiresAt });
    const base = baseUrl ?? this.options.publicUrl ?? '';
    return {
      url: `${base}${signed}`,
      expiresAt: expiresAt === undefined ? null : new Date(expiresAt * 1000).toISOString(),
    };
  }

  private limits() {
    return { maxWidth: this.options.maxOutputSide, maxHeight: this.options.maxOutputSide };
  }
}
