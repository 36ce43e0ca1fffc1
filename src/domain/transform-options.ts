import { AppError } from '../errors.js';

// On-demand image transforms (`GET /img/{assetId}?w=1280&q=80&f=webp`): the pure decision layer.
// It turns a query into validated options, a canonical string of them (the cache key part), the
// output format for a request's Accept header and the output pixel size, all before any decode.
//
// Parsing is strict on purpose: every accepted spelling is a distinct URL a cache may hold, so
// unknown, repeated or empty parameters and out-of-range values are refused (TRANSFORM_INVALID,
// 400) instead of being ignored or clamped. The signing parameters (`sig`, `exp`, `kid`) are left to
// the signing layer and ignored here.

export type Gravity =
  | 'center'
  | 'north'
  | 'northeast'
  | 'east'
  | 'southeast'
  | 'south'
  | 'southwest'
  | 'west'
  | 'northwest';

export type Position =
  | { kind: 'gravity'; value: Gravity }
  | { kind: 'strategy'; value: 'attention' | 'entropy' }
  /** x and y in 0..1, from the left and top edges. */
  | { kind: 'focus'; x: number; y: number };

export type Fit = 'cover' | 'contain' | 'fill' | 'inside' | 'outside';
export type OutputFormat = 'webp' | 'avif' | 'jpeg' | 'png';

export interface TransformOptions {
  /** Requested width in CSS pixels (before dpr); null keeps it from the source / aspect ratio. */
  width: number | null;
  height: number | null;
  fit: Fit;
  position: Position;
  quality: number | null;
  /** null keeps the source format; 'auto' negotiates with the Accept header. */
  format: 'auto' | OutputFormat | null;
  dpr: number;
  blur: number | null;
  /** Lowercase hex, 6 or 8 digits, no '#'. */
  background: string | null;
  animated: boolean;
}

export interface TransformLimits {
  /** Output width (w × dpr) at most this. */
  maxWidth: number;
  maxHeight: number;
  /** When set, `w` and `h` must be one of these (used without URL signing, against cache-busting). */
  allowedWidths?: readonly number[];
  allowedQualities?: readonly number[];
}

export const DEFAULT_TRANSFORM_LIMITS: TransformLimits = Object.freeze({ maxWidth: 8192, maxHeight: 8192 });

/** The parameters this module reads, in canonical order. */
const PARAMS = ['w', 'h', 'fit', 'pos', 'q', 'f', 'dpr', 'blur', 'bg', 'anim'] as const;
type ParamName = (typeof PARAMS)[number];
const SIGNING_PARAMS: ReadonlySet<string> = new Set(['sig', 'exp', 'kid']);

const FITS: readonly Fit[] = ['cover', 'contain', 'fill', 'inside', 'outside'];

const GRAVITY_NAMES: Readonly<Record<string, Gravity>> = {
  c: 'center',
  center: 'center',
  centre: 'center',
  n: 'north',
  north: 'north',
  ne: 'northeast',
  northeast: 'northeast',
  e: 'east',
  east: 'east',
  se: 'southeast',
  southeast: 'southeast',
  s: 'south',
  south: 'south',
  sw: 'southwest',
  southwest: 'southwest',
  w: 'west',
  west: 'west',
  nw: 'northwest',
  northwest: 'northwest',
};

const FORMAT_NAMES: Readonly<Record<string, NonNullable<TransformOptions['format']>>> = {
  auto: 'auto',
  webp: 'webp',
  avif: 'avif',
  jpeg: 'jpeg',
  jpg: 'jpeg',
  png: 'png',
};

const INTEGER = /^(?:0|[1-9][0-9]{0,8})$/;
const DPR = /^[0-9](?:\.[0-9]{1,2})?$/;
const BLUR = /^[0-9]{1,4}(?:\.[0-9]{1,3})?$/;
const FOCUS = /^(?:fp|focus):([0-9](?:\.[0-9]{1,4})?),([0-9](?:\.[0-9]{1,4})?)$/;
const HEX = /^(?:[0-9a-f]{3}|[0-9a-f]{6}|[0-9a-f]{8})$/i;

const MIN_BLUR = 0.3;
// A Gaussian blur costs in proportion to its sigma: 300 on a 3000 px output took minutes here.
const MAX_BLUR = 100;
const MAX_DPR = 4;

/**
 * Validated transform options from a request query (URLSearchParams, or a parsed-query record
 * whose array values are repeated parameters). Throws TRANSFORM_INVALID (400) naming the parameter,
 * the value and what is allowed, for any unknown, repeated, empty, malformed or out-of-range value.
 */
export function parseTransformQuery(
  query: URLSearchParams | Record<string, string | string[] | undefined>,
  limits: TransformLimits = DEFAULT_TRANSFORM_LIMITS,
): TransformOptions {
  const values = collect(query);

  const width = values.w === undefined ? null : integerParam('w', values.w, 1, limits.maxWidth);
  const height = values.h === undefined ? null : integerParam('h', values.h, 1, limits.maxHeight);
  if (width !== null && limits.allowedWidths && !limits.allowedWidths.includes(width)) {
    throw invalid('w', values.w ?? '', `one of ${limits.allowedWidths.join(', ')}`);
  }
  if (height !== null && limits.allowedWidths && !limits.allowedWidths.includes(height)) {
    throw invalid('h', values.h ?? '', `one of ${limits.allowedWidths.join(', ')}`);
  }

  const quality = values.q === undefined ? null : integerParam('q', values.q, 1, 100);
  if (quality !== null && limits.allowedQualities && !limits.allowedQualities.includes(quality)) {
    throw invalid('q', values.q ?? '', `one of ${limits.allowedQualities.join(', ')}`);
  }

  let dpr = 1;
  if (values.dpr !== undefined) {
    dpr = Number(values.dpr);
    if (!DPR.test(values.dpr) || dpr < 1 || dpr > MAX_DPR) {
      throw invalid('dpr', values.dpr, `a number from 1 to ${MAX_DPR} with at most 2 decimals`);
    }
  }
  if (width !== null && Math.round(width * dpr) > limits.maxWidth) {
    throw invalid('w', values.w ?? '', `w × dpr (${dpr}) at most ${limits.maxWidth} pixels`);
  }
  if (height !== null && Math.round(height * dpr) > limits.maxHeight) {
    throw invalid('h', values.h ?? '', `h × dpr (${dpr}) at most ${limits.maxHeight} pixels`);
  }

  let fit: Fit = width !== null && height !== null ? 'cover' : 'inside';
  if (values.fit !== undefined) {
    const given = FITS.find((candidate) => candidate === values.fit);
    if (!given) throw invalid('fit', values.fit, `one of ${FITS.join(', ')}`);
    fit = given;
  }

  const position: Position = values.pos === undefined ? CENTER : parsePosition(values.pos);

  let format: TransformOptions['format'] = null;
  if (values.f !== undefined) {
    const given = Object.hasOwn(FORMAT_NAMES, values.f) ? FORMAT_NAMES[values.f] : undefined;
    if (!given) throw invalid('f', values.f, `one of ${Object.keys(FORMAT_NAMES).join(', ')}`);
    format = given;
  }

  let blur: number | null = null;
  if (values.blur !== undefined) {
    blur = Number(values.blur);
    if (!BLUR.test(values.blur) || blur < MIN_BLUR || blur > MAX_BLUR) {
      throw invalid('blur', values.blur, `a number from ${MIN_BLUR} to ${MAX_BLUR} with at most 3 decimals`);
    }
  }

  let background: string | null = null;
  if (values.bg !== undefined) {
    if (!HEX.test(values.bg)) {
      throw invalid('bg', values.bg, 'a hex colour of 3, 6 or 8 digits (rgb, rrggbb, rrggbbaa) without "#"');
    }
    background = normaliseHex(values.bg);
  }

  let animated = false;
  if (values.anim !== undefined) {
    if (values.anim === '1' || values.anim === 'true') animated = true;
    else if (values.anim !== '0' && values.anim !== 'false') {
      throw invalid('anim', values.anim, 'one of 1, true, 0, false');
    }
  }

  return { width, height, fit, position, quality, format, dpr, blur, background, animated };
}

/**
 * The effective options as a stable, minimal query-like string: parameters in a fixed order
 * (w, h, fit, pos, q, f, dpr, blur, bg, anim), defaults left out (fit when it is the default for the
 * given sides, centre position, dpr 1, still images), numbers in their shortest form, names
 * canonical (`pos=north`, `f=jpeg`). All defaults give ''. parseTransformQuery reads it back.
 */
export function canonicalTransform(options: TransformOptions): string {
  const parts: [ParamName, string][] = [];
  if (options.width !== null) parts.push(['w', String(options.width)]);
  if (options.height !== null) parts.push(['h', String(options.height)]);
  const defaultFit: Fit = options.width !== null && options.height !== null ? 'cover' : 'inside';
  if (options.fit !== defaultFit) parts.push(['fit', options.fit]);
  const position = positionString(options.position);
  if (position !== 'center') parts.push(['pos', position]);
  if (options.quality !== null) parts.push(['q', String(options.quality)]);
  if (options.format !== null) parts.push(['f', options.format]);
  if (options.dpr !== 1) parts.push(['dpr', String(options.dpr)]);
  if (options.blur !== null) parts.push(['blur', String(options.blur)]);
  if (options.background !== null) parts.push(['bg', normaliseHex(options.background)]);
  if (options.animated) parts.push(['anim', '1']);
  return parts.map(([name, value]) => `${name}=${value}`).join('&');
}

/**
 * The format to encode. An explicit format is used as is. null keeps the source format when it is
 * one of the four (jpg counts as jpeg), else png with alpha / jpeg without. 'auto' picks avif when
 * Accept lists image/avif, else webp when it lists image/webp (an explicit `;q=0` excludes; wildcards
 * do not count), else png with alpha / jpeg. `vary` is true for every 'auto' answer — including
 * jpeg/png fallbacks, since another Accept would have changed them — so the response carries
 * `Vary: Accept`.
 */
export function negotiateFormat(
  requested: TransformOptions['format'],
  accept: string | undefined,
  source: { hasAlpha: boolean; format: string },
): { format: OutputFormat; vary: boolean } {
  const fallback: OutputFormat = source.hasAlpha ? 'png' : 'jpeg';
  if (requested === null) {
    const given = source.format.toLowerCase();
    const kept = given === 'jpg' ? 'jpeg' : given;
    const format = kept === 'webp' || kept === 'avif' || kept === 'jpeg' || kept === 'png' ? kept : fallback;
    return { format, vary: false };
  }
  if (requested !== 'auto') return { format: requested, vary: false };
  const accepted = acceptedTypes(accept ?? '');
  if (accepted('image/avif')) return { format: 'avif', vary: true };
  if (accepted('image/webp')) return { format: 'webp', vary: true };
  return { format: fallback, vary: true };
}

/**
 * The pixel size of the result for a source of the given size: w and h are multiplied by dpr and
 * rounded. No w and no h: the source size. One side: that side, the other from the aspect ratio
 * (for 'inside', never larger than the source). Both sides: exactly w×dpr by h×dpr for cover, fill
 * and contain; for 'inside' the largest fit within them, never upscaled; for 'outside' the smallest
 * size covering them. Every side is at least 1.
 */
export function outputSize(
  options: Pick<TransformOptions, 'width' | 'height' | 'fit' | 'dpr'>,
  source: { width: number; height: number },
): { width: number; height: number } {
  if (!(source.width > 0 && source.height > 0)) {
    throw new TypeError(`The source size must be positive; got ${source.width}x${source.height}.`);
  }
  const tw = options.width === null ? null : Math.max(1, Math.round(options.width * options.dpr));
  const th = options.height === null ? null : Math.max(1, Math.round(options.height * options.dpr));
  const byWidth = (w: number) => ({
    width: w,
    height: Math.max(1, Math.round((source.height * w) / source.width)),
  });
  const byHeight = (h: number) => ({
    width: Math.max(1, Math.round((source.width * h) / source.height)),
    height: h,
  });
  const inside = options.fit === 'inside';

  if (tw === null && th === null) return { width: source.width, height: source.height };
  if (th === null && tw !== null) return inside && tw >= source.width ? { ...source } : byWidth(tw);
  if (tw === null && th !== null) return inside && th >= source.height ? { ...source } : byHeight(th);
  if (tw === null || th === null) throw new Error('unreachable');

  if (options.fit === 'cover' || options.fit === 'fill' || options.fit === 'contain')
    return { width: tw, height: th };
  // Compare tw/sw with th/sh without division.
  const widthLimits = tw * source.height <= th * source.width;
  if (inside) {
    if (tw >= source.width && th >= source.height) return { width: source.width, height: source.height };
    return widthLimits ? byWidth(tw) : byHeight(th);
  }
  return widthLimits ? byHeight(th) : byWidth(tw);
}

const CENTER: Position = { kind: 'gravity', value: 'center' };

function collect(
  query: URLSearchParams | Record<string, string | string[] | undefined>,
): Partial<Record<ParamName, string>> {
  const seen = new Map<string, string[]>();
  const add = (name: string, value: string) => {
    const list = seen.get(name);
    if (list) list.push(value);
    else seen.set(name, [value]);
  };
  if (query instanceof URLSearchParams) {
    for (const [name, value] of query) add(name, value);
  } else {
    for (const [name, value] of Object.entries(query)) {
      if (value === undefined) continue;
      for (const one of Array.isArray(value) ? value : [value]) add(name, one);
    }
  }
  const values: Partial<Record<ParamName, string>> = {};
  for (const [name, list] of seen) {
    if (SIGNING_PARAMS.has(name)) continue;
    const known = PARAMS.find((candidate) => candidate === name);
    if (!known) {
      throw new AppError(
        'TRANSFORM_INVALID',
        `Unknown transform parameter ${show(name)}; allowed: ${PARAMS.join(', ')}.`,
      );
    }
    if (list.length > 1) {
      throw new AppError(
        'TRANSFORM_INVALID',
        `Transform parameter ${known} is given ${list.length} times (${list.map(show).join(', ')}); allowed: once.`,
      );
    }
    const [value] = list;
    if (value === undefined || value === '') throw invalid(known, '', 'a non-empty value');
    values[known] = value;
  }
  return values;
}

function integerParam(name: ParamName, raw: string, min: number, max: number): number {
  const value = Number(raw);
  if (!INTEGER.test(raw) || value < min || value > max) {
    throw invalid(name, raw, `a whole number from ${min} to ${max}`);
  }
  return value;
}

function parsePosition(raw: string): Position {
  if (Object.hasOwn(GRAVITY_NAMES, raw)) {
    const value = GRAVITY_NAMES[raw];
    if (value) return { kind: 'gravity', value };
  }
  if (raw === 'attention' || raw === 'entropy') return { kind: 'strategy', value: raw };
  const focus = FOCUS.exec(raw);
  if (focus) {
    const x = Number(focus[1]);
    const y = Number(focus[2]);
    if (x <= 1 && y <= 1) return { kind: 'focus', x, y };
  }
  throw invalid(
    'pos',
    raw,
    'a compass gravity (center, north … northwest, or c, n, ne, e, se, s, sw, w, nw), attention, entropy, ' +
      'or fp:x,y / focus:x,y with x and y from 0 to 1 (at most 4 decimals)',
  );
}

function positionString(position: Position): string {
  switch (position.kind) {
    case 'gravity':
    case 'strategy':
      return position.value;
    case 'focus':
      return `fp:${position.x},${position.y}`;
  }
}

/** Lowercase 6 or 8 digits; an opaque alpha (`ff`) is dropped so that one colour has one spelling. */
function normaliseHex(hex: string): string {
  const lower = hex.toLowerCase();
  const full =
    lower.length === 3
      ? lower
          .split('')
          .map((digit) => digit + digit)
          .join('')
      : lower;
  return full.length === 8 && full.endsWith('ff') ? full.slice(0, 6) : full;
}

/** Whether a media type is acceptable per Accept: listed explicitly with a non-zero q. */
export function acceptedTypes(accept: string): (type: string) => boolean {
  const qualities = new Map<string, number>();
  for (const range of accept.split(',')) {
    const [typePart, ...params] = range.split(';');
    const type = typePart?.trim().toLowerCase();
    if (!type) continue;
    let q = 1;
    for (const param of params) {
      const [key, value] = param.split('=').map((piece) => piece.trim());
      if (
        key?.toLowerCase() === 'q' &&
        value !== undefined &&
        /^(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)$/.test(value)
      ) {
        q = Number(value);
      }
    }
    // A type listed twice counts at its lowest q, so an explicit q=0 always excludes.
    qualities.set(type, Math.min(q, qualities.get(type) ?? 1));
  }
  return (type) => (qualities.get(type) ?? 0) > 0;
}

function invalid(name: ParamName, value: string, allowed: string): AppError {
  return new AppError(
    'TRANSFORM_INVALID',
    `Invalid transform parameter ${name}=${show(value)}; allowed: ${allowed}.`,
  );
}

/** A user-supplied value, quoted and cut short, for an error message. */
function show(value: string): string {
  return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
}
