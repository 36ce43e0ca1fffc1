import type { Catalog } from '../catalog/catalog.js';
import type { Rendition } from '../domain/asset.js';
import type { SigningKey } from '../domain/signing.js';
import { type StreamTokenVerdict, verifyStreamToken } from '../domain/stream-token.js';
import { AppError } from '../errors.js';
import type { BlobResponse } from '../http/send-blob.js';
import { STREAM_PATH_PREFIX } from '../http/stream-links.js';
import { MemoryCache } from '../lib/memory-cache.js';
import { STREAM_PREFIX, streamContentType } from '../pipeline/video/stream-files.js';
import type { BlobStore, ByteRange } from '../storage/blob-store.js';

// `/stream/<assetId>/<version>/<token>/<path>`: the files of one version's stream package, for
// players on any origin. The token (stream-token.ts) is the whole authorisation; it names the asset
// and the version, so it opens exactly the files of that version's `stream/` renditions.
//
// The file is looked up by rendition name, never by building a blob key from the URL, so no path
// can reach another key; dot segments, encoded slashes and control characters are still refused
// outright (400), so a URL that a cache or a player would normalise differently never succeeds.

/** Playlists, the MPD and the storyboard VTT may be rewritten by a reprocess of the same version. */
const SHORT_LIVED = /\.(m3u8|mpd|vtt)$/;
const SHORT_MAX_AGE_SEC = 60;
const IMMUTABLE_MAX_AGE_SEC = 31_536_000;
const ASSET_ID = /^[A-Za-z0-9_-]{1,64}$/;
const VERSION = /^[1-9][0-9]{0,8}$/;
/** Longest path inside a package; package paths are short (`h264-1080p/seg-00042.m4s`). */
const MAX_PATH_CHARS = 512;
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
const FORBIDDEN_IN_SEGMENT = /[\u0000-\u001f\u007f-\u009f/\\]/;
// A version's rendition rows are listed once per segment request otherwise: thousands of rows for
// a film. Rows of a ready version only change by a reprocess, which takes the version out of
// `ready` (checked on every request) first, and the blob's own head is always fresh.
const RENDITIONS_TTL_MS = 10_000;

export interface StreamDeliveryDeps {
  catalog: Pick<Catalog, 'getAsset' | 'getVersion' | 'getProject' | 'listRenditions'>;
  blobs: Pick<BlobStore, 'head' | 'get'>;
  signingKeys: readonly SigningKey[];
  /** Unix milliseconds. @default Date.now */
  now?: () => number;
}

/** The parts of a stream URL, each decoded and checked. */
export interface StreamAddress {
  assetId: string;
  version: number;
  token: string;
  /** Path inside the package (`h264-720p/seg-00000.m4s`), decoded. */
  path: string;
}

/**
 * Reads `/stream/<assetId>/<version>/<token>/<path>` from the raw (still percent-encoded) URL path.
 * Throws `URL_INVALID` (400) for a path that uses dot segments, empty segments, encoded slashes or
 * backslashes, control characters or broken percent-encoding, and `NOT_FOUND` (404) for an asset id
 * or version that cannot exist. Pure.
 */
export function parseStreamAddress(rawPath: string): StreamAddress {
  if (!rawPath.startsWith(STREAM_PATH_PREFIX)) {
    throw new AppError('URL_INVALID', `A stream URL starts with ${STREAM_PATH_PREFIX}.`);
  }
  const segments = rawPath
    .slice(STREAM_PATH_PREFIX.length)
    .split('/')
    .map((raw) => {
      let decoded: string;
      try {
        decoded = decodeURIComponent(raw);
      } catch {
        throw new AppError('URL_INVALID', 'The stream URL has broken percent-encoding.');
      }
      if (decoded === '' || decoded === '.' || decoded === '..' || FORBIDDEN_IN_SEGMENT.test(decoded)) {
        throw new AppError(
          'URL_INVALID',
          'A stream URL may not contain empty or dot segments, encoded slashes, backslashes or control characters.',
        );
      }
      return decoded;
    });
  const [assetId, version, token, ...rest] = segments;
  if (assetId === undefined || version === undefined || token === undefined || rest.length === 0) {
    throw new AppError('URL_INVALID', 'A stream URL is /stream/<assetId>/<version>/<token>/<path>.');
  }
  const path = rest.join('/');
  if (!ASSET_ID.test(assetId) || !VERSION.test(version) || path.length > MAX_PATH_CHARS) {
    throw new AppError('NOT_FOUND', 'No such stream file.');
  }
  return { assetId, version: Number(version), token, path };
}

function tokenRefusal(verdict: Exclude<StreamTokenVerdict, { ok: true }>, address: StreamAddress): AppError {
  const fresh = `get a fresh URL from the asset record (GET /v1/assets/${address.assetId})`;
  let why: string;
  switch (verdict.reason) {
    case 'malformed':
      why = `the token in this stream URL is malformed; ${fresh}.`;
      break;
    case 'unknown-key':
      why = `the token was signed with a key this server no longer has (ASSETPIPE_SIGNING_SECRET changed); ${fresh}.`;
      break;
    case 'mismatch':
      why = `the token was not made for version ${address.version} of asset ${address.assetId}, or it was altered.`;
      break;
    case 'expired': {
      // Only an expiring token of the right shape gets this far, so its exp is whole seconds.
      const exp = Number(address.token.split('.')[1]);
      why = `the token expired at ${new Date(exp * 1000).toISOString()}; ${fresh}.`;
      break;
    }
  }
  return new AppError('STREAM_TOKEN_INVALID', `Stream URL refused (${verdict.reason}): ${why}`);
}

/** Serves the files of stream packages: token, asset, version and file checks, then the blob. */
export class StreamDelivery {
  private readonly now: () => number;
  // A film's version is thousands of rows: a few dozen versions watched at once is the working set.
  private readonly renditions = new MemoryCache<Promise<Map<string, Rendition>>>({
    maxEntries: 64,
    ttlMs: RENDITIONS_TTL_MS,
  });

  constructor(private readonly deps: StreamDeliveryDeps) {
    this.now = deps.now ?? Date.now;
  }

  /**
   * The file at `rawPath` (the request's path, still percent-encoded, without the query), ready
   * for `sendBlob`. Throws 400 (`URL_INVALID`), 403 (`STREAM_TOKEN_INVALID`) or 404 problems.
   */
  async deliver(rawPath: string): Promise<BlobResponse> {
    const address = parseStreamAddress(rawPath);
    const nowSec = Math.floor(this.now() / 1000);
    const verdict = verifyStreamToken(address.token, address.assetId, address.version, {
      keys: this.deps.signingKeys,
      now: nowSec,
    });
    if (!verdict.ok) throw tokenRefusal(verdict, address);

    const { catalog } = this.deps;
    const asset = await catalog.getAsset(address.assetId);
    if (!asset || asset.deletedAt !== null || asset.type === 'image') {
      throw new AppError('ASSET_NOT_FOUND', `No asset with id ${JSON.stringify(address.assetId)}.`);
    }
    const version = await catalog.getVersion(asset.id, address.version);
    // A version being (re)processed has a half-written package: readers never see one.
    if (version?.status !== 'ready') {
      throw new AppError('NOT_FOUND', `Asset ${asset.id} has no ready version ${address.version}.`);
    }
    const project = await catalog.getProject(asset.projectId);
    const isPrivate = project?.visibility !== 'public';
    if (isPrivate && verdict.expiresAt === null) {
      // A public project's tokens never expire; once it turns private they must stop working.
      throw new AppError(
        'STREAM_TOKEN_INVALID',
        `Stream URL refused (no expiry): the project of asset ${asset.id} is private, so its stream URLs must expire; get a fresh URL from the asset record (GET /v1/assets/${asset.id}).`,
      );
    }

    const rendition = (await this.versionFiles(asset.id, address.version)).get(
      `${STREAM_PREFIX}${address.path}`,
    );
    const info = rendition ? await this.deps.blobs.head(rendition.key) : undefined;
    if (!rendition || !info) {
      throw new AppError(
        'NOT_FOUND',
        `Version ${address.version} of asset ${asset.id} has no stream file ${JSON.stringify(address.path)}.`,
      );
    }
    const short = SHORT_LIVED.test(address.path);
    // Never cached past the token's life: a CDN must not keep serving a URL that stopped working.
    const remaining = verdict.expiresAt === null ? Number.POSITIVE_INFINITY : verdict.expiresAt - nowSec;
    const maxAge = Math.min(short ? SHORT_MAX_AGE_SEC : IMMUTABLE_MAX_AGE_SEC, remaining);
    const key = rendition.key;
    return {
      info,
      open: (range?: ByteRange) => this.deps.blobs.get(key, range),
      contentType: streamContentType(address.path),
      cacheControl: `${isPrivate ? 'private' : 'public'}, max-age=${maxAge}${short ? '' : ', immutable'}`,
    };
  }

  private versionFiles(assetId: string, version: number): Promise<Map<string, Rendition>> {
    const memo = `${assetId}@${version}`;
    const known = this.renditions.get(memo);
    if (known) return known;
    const listed = this.deps.catalog
      .listRenditions(assetId, version)
      .then((rows) => new Map(rows.filter((r) => r.name.startsWith(STREAM_PREFIX)).map((r) => [r.name, r])));
    this.renditions.set(memo, listed);
    listed.catch(() => this.renditions.delete(memo));
    return listed;
  }
}
