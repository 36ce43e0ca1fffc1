import type { ImagePreset } from '../domain/image-presets.js';
import {
  acceptedTypes,
  negotiateFormat,
  type OutputFormat,
  parseTransformQuery,
  type TransformLimits,
  type TransformOptions,
} from '../domain/transform-options.js';
import { AppError } from '../errors.js';

// The /img URL beyond the transform options (pure): which image (`/img/<assetId>` or the original
// design's `/img/originals/<upload id>`), which version (`v`), which eager preset (`preset`). Shared
// by delivery, the signing API and the CLI so that all three read a URL the same way.

export type ImgTarget = { kind: 'asset'; assetId: string } | { kind: 'original'; key: string };

export interface ImgUrl {
  target: ImgTarget;
  /** `v`: null means the asset's current version. */
  version: number | null;
  preset: string | null;
  /** Everything else in the query: transform parameters and `sig`/`kid`/`exp`. */
  params: URLSearchParams;
  /** Whether the URL carries a `sig` (then it must verify, whatever the settings). */
  signed: boolean;
}

/** The path prefix of the transform endpoint. */
export const IMG_PATH_PREFIX = '/img/';

const ID = /^[A-Za-z0-9_-]{1,64}$/;
const VERSION = /^[1-9][0-9]{0,8}$/;
const ROUTE_PARAMS = ['v', 'preset'] as const;

/**
 * Reads `/img/<assetId>` or `/img/originals/<upload id>` (the slash may be sent as `%2F`) and the
 * raw query. Throws ASSET_NOT_FOUND for a path that cannot name an image, TRANSFORM_INVALID for a
 * bad or repeated `v`/`preset`.
 */
export function parseImgUrl(path: string, rawQuery: string): ImgUrl {
  const target = parseImgPath(path);
  const params = new URLSearchParams(rawQuery);
  const single = (name: (typeof ROUTE_PARAMS)[number]): string | null => {
    const values = params.getAll(name);
    params.delete(name);
    if (values.length > 1) {
      throw new AppError(
        'TRANSFORM_INVALID',
        `Parameter ${name} is given ${values.length} times; allowed: once.`,
      );
    }
    const [value] = values;
    if (value === '') throw new AppError('TRANSFORM_INVALID', `Parameter ${name} needs a value.`);
    return value ?? null;
  };
  const rawVersion = single('v');
  const preset = single('preset');
  if (rawVersion !== null && !VERSION.test(rawVersion)) {
    throw new AppError(
      'TRANSFORM_INVALID',
      `Invalid parameter v=${JSON.stringify(rawVersion.slice(0, 32))}; allowed: a version number (1, 2, ...).`,
    );
  }
  const version = rawVersion === null ? null : Number(rawVersion);
  if (version !== null && target.kind === 'original') {
    throw new AppError(
      'TRANSFORM_INVALID',
      "Parameter v cannot be used with an original's key: the key already names one version.",
    );
  }
  return { target, version, preset, params, signed: params.has('sig') };
}

function parseImgPath(path: string): ImgTarget {
  const notFound = () =>
    new AppError(
      'ASSET_NOT_FOUND',
      `No image at ${JSON.stringify(path.slice(0, 200))}; use /img/<asset id>.`,
    );
  if (!path.startsWith(IMG_PATH_PREFIX)) throw notFound();
  let rest: string;
  try {
    rest = decodeURIComponent(path.slice(IMG_PATH_PREFIX.length));
  } catch {
    throw notFound();
  }
  const segments = rest.split('/');
  if (segments.length === 1 && ID.test(rest)) return { kind: 'asset', assetId: rest };
  const [first, id] = segments;
  if (segments.length === 2 && first === 'originals' && id !== undefined && ID.test(id)) {
    return { kind: 'original', key: `originals/${id}` };
  }
  throw notFound();
}

/**
 * The transform options of a preset URL: the preset's box, fit inside (never enlarged), its
 * quality. Only `f` may accompany `preset` (`auto` or one of the preset's formats); anything else
 * would not be that preset any more.
 */
export function presetOptions(
  presets: readonly ImagePreset[],
  name: string,
  params: URLSearchParams,
): {
  preset: ImagePreset;
  options: TransformOptions;
} {
  const preset = presets.find((candidate) => candidate.name === name);
  if (!preset) {
    const known = presets.map((p) => p.name).join(', ') || 'none configured';
    throw new AppError(
      'TRANSFORM_INVALID',
      `Unknown preset ${JSON.stringify(name.slice(0, 64))}; known: ${known}.`,
    );
  }
  const extra = [...new Set([...params.keys()])].filter((key) => !['f', 'sig', 'kid', 'exp'].includes(key));
  if (extra.length > 0) {
    throw new AppError(
      'TRANSFORM_INVALID',
      `A preset URL takes no transform parameters besides f; remove ${extra.join(', ')} (or drop preset).`,
    );
  }
  const requested = params.has('f') ? parseTransformQuery({ f: params.getAll('f') }).format : null;
  if (requested !== null && requested !== 'auto' && !preset.formats.includes(requested)) {
    throw new AppError(
      'TRANSFORM_INVALID',
      `Preset ${preset.name} is made as ${preset.formats.join(', ')}; use f=auto or one of those.`,
    );
  }
  return {
    preset,
    options: {
      width: preset.maxSide,
      height: preset.maxSide,
      fit: 'inside',
      position: { kind: 'gravity', value: 'center' },
      quality: preset.quality,
      format: requested ?? preset.formats[0] ?? 'webp',
      dpr: 1,
      blur: null,
      background: null,
      animated: false,
    },
  };
}

/**
 * The options of a URL (preset or plain), checked against the output limits only. The allow-lists
 * for unsigned URLs are a separate check (`checkAllowLists`), made once the signature is known.
 */
export function transformOptionsOf(
  url: ImgUrl,
  presets: readonly ImagePreset[],
  limits: TransformLimits,
): { options: TransformOptions; preset: ImagePreset | null } {
  if (url.preset !== null) return presetOptions(presets, url.preset, url.params);
  return { options: parseTransformQuery(url.params, limits), preset: null };
}

/**
 * Unsigned URLs may only use the allow-listed sizes and qualities, whole-number `dpr`, and none of
 * the parameters with thousands of values (`blur`, `bg`, a focus point): every distinct URL is a
 * transform and a cached object, so an open parameter space lets anyone fill the cache and the CPU.
 */
export function checkAllowLists(
  url: ImgUrl,
  limits: TransformLimits & Required<Pick<TransformLimits, 'allowedWidths' | 'allowedQualities'>>,
): void {
  if (url.preset !== null) return;
  const options = parseTransformQuery(url.params, limits);
  const signedOnly = (name: string, what: string) =>
    new AppError(
      'TRANSFORM_INVALID',
      `${[name, what].filter(Boolean).join(' ')} is only accepted on signed URLs (ASSETPIPE_IMG_SIGNATURE=off limits unsigned ones); sign the URL with POST /v1/img/sign or assetpipe sign-url.`,
    );
  if (options.blur !== null) throw signedOnly('blur', '');
  if (options.background !== null) throw signedOnly('bg', '');
  if (options.position.kind === 'focus') throw signedOnly('pos', 'with a focus point');
  if (!Number.isInteger(options.dpr)) throw signedOnly('dpr', 'other than 1, 2, 3 or 4');
}

/**
 * The output format for a request: `negotiateFormat`, except for `preset` with `f=auto`, which
 * prefers a format the preset is made in (served from the eager rendition) among those the client
 * accepts, and otherwise falls back to what `f=auto` would give (transformed at the preset's size).
 */
export function chooseFormat(
  options: Pick<TransformOptions, 'format'>,
  preset: ImagePreset | null,
  accept: string | undefined,
  source: { hasAlpha: boolean; format: string },
): { format: OutputFormat; vary: boolean } {
  const negotiated = negotiateFormat(options.format, accept, source);
  if (!preset || options.format !== 'auto' || preset.formats.includes(negotiated.format)) return negotiated;
  const accepted = acceptedTypes(accept ?? '');
  const acceptable = (format: OutputFormat) =>
    format === 'jpeg' || format === 'png' || accepted(`image/${format}`);
  const served = preset.formats.find(acceptable);
  return { format: served ?? negotiated.format, vary: true };
}

/** How long any cache may keep an /img answer when nothing shortens it: a year. */
export const IMMUTABLE_MAX_AGE_SEC = 31_536_000;

/**
 * `Cache-Control` of an /img answer. Answers never change (they name a version), so a year and
 * `immutable`; but an answer to a URL with `exp` (verified by then, or harmlessly unsigned) may
 * not outlive it in a browser or CDN cache, or a private project's expiring URL would keep being
 * served from a cache long after it stopped working at the origin.
 */
export function cacheControlFor(rawQuery: string, now: number): string {
  const exp = rawQuery.includes('exp') ? new URLSearchParams(rawQuery).get('exp') : null;
  const until = exp !== null && /^[0-9]{1,15}$/.test(exp) ? Number(exp) - now : IMMUTABLE_MAX_AGE_SEC;
  const maxAge = Math.max(0, Math.min(IMMUTABLE_MAX_AGE_SEC, Math.floor(until)));
  return `public, max-age=${maxAge}, immutable`;
}

/** Whether a format can only be produced by the source-dependent negotiation (null or auto). */
export function needsSourceFacts(options: Pick<TransformOptions, 'format'>): boolean {
  return options.format === null || options.format === 'auto';
}
