import { encode as encodeBlurhash } from 'blurhash';
import type { OutputInfo } from 'sharp';
import { rgbaToThumbHash } from 'thumbhash';
import { perceptualHash } from '../domain/phash.js';
import { AppError } from '../errors.js';
import { type ImageLimits, type ImageProbe, imageErrorToAppError, openImage } from './image.js';
import { sharp } from './image-sharp.js';

// Placeholders, dominant colour and perceptual hash, all from ONE decode of a small downscale of the
// normalised image (upright, sRGB, 8-bit, first frame/page). Everything after that decode works on
// the raw RGBA buffer it produced, so the original is read exactly once here.

/**
 * Longest side of the single analysis decode: ThumbHash's limit, so its encoder takes the buffer as
 * it is. Large enough for the pHash (a 32x32 reduction of it): test/medium/phash-robustness.test.ts
 * measured the same distances at 100, 128 and 256 px (re-encodes <= 2 bits, different photos >= 20).
 */
export const ANALYSIS_SIDE = 100;
/** ThumbHash's encoder accepts at most 100 x 100 pixels. */
const THUMBHASH_SIDE = 100;
/** BlurHash cost grows with pixels x components: ~20 ms at 100 px, ~2 ms at 32 px, same hash. */
const BLURHASH_SIDE = 32;
/** The pHash reduction (see src/domain/phash.ts). */
const PHASH_SIDE = 32;
/** The LQIP data URL must stay under this many bytes (it is inlined into HTML and JSON). */
export const MAX_LQIP_BYTES = 1024;
/**
 * LQIP encodings tried in order until one fits {@link MAX_LQIP_BYTES}. A 24 px WebP is about 200-500
 * bytes for a photo; noise-like images need the smaller steps. The last one (8 px) cannot reach
 * 1 kB, but the length is still checked.
 */
export const LQIP_ATTEMPTS: readonly { side: number; quality: number }[] = [
  { side: 24, quality: 50 },
  { side: 20, quality: 40 },
  { side: 16, quality: 30 },
  { side: 12, quality: 20 },
  { side: 8, quality: 10 },
];
/**
 * BlurHash has no alpha channel: transparent pixels are composited over white (the usual page
 * background) first, otherwise their undefined colour (often black) would darken the placeholder.
 * The pHash input is flattened the same way, so a logo hashes like it looks on a page.
 */
const FLATTEN_BACKGROUND = '#ffffff';

export interface RgbaPixels {
  /** Row-major RGBA, 8 bits per channel, not premultiplied. */
  data: Uint8ClampedArray;
  width: number;
  height: number;
}

export interface ImageAnalysis {
  blurhash: string;
  /** ThumbHash bytes, base64 (standard alphabet, with padding). */
  thumbhash: string;
  /** `data:image/webp;base64,...`, shorter than {@link MAX_LQIP_BYTES}. */
  lqip: string;
  /** `#rrggbb`; null when every pixel is fully transparent. */
  dominantColor: string | null;
  /** 64-bit DCT pHash, 16 hex digits. */
  perceptualHash: string;
}

export interface AnalyseImageOptions {
  /** Local path of the original. */
  path: string;
  probe: Pick<ImageProbe, 'format' | 'pages'>;
  limits: ImageLimits;
  /** BlurHash components, each 1-9. */
  blurhashComponents: { x: number; y: number };
}

/**
 * Decodes the normalised image once, at most {@link ANALYSIS_SIDE} px on its longest side, and
 * derives every placeholder and hash from that buffer. Damaged pixel data fails here with a
 * `MEDIA_INVALID` reason.
 */
export async function analyseImage(options: AnalyseImageOptions): Promise<ImageAnalysis> {
  const pixels = await decodeAnalysisPixels(options);
  return analysePixels(pixels, { blurhashComponents: options.blurhashComponents });
}

/** The single decode: first frame, normalised, shrunk to fit {@link ANALYSIS_SIDE}, RGBA. */
export async function decodeAnalysisPixels(
  options: Pick<AnalyseImageOptions, 'path' | 'probe' | 'limits'>,
): Promise<RgbaPixels> {
  try {
    const image = await openImage(options.path, options.probe, options.limits);
    const { data, info } = await image
      .resize(ANALYSIS_SIDE, ANALYSIS_SIDE, { fit: 'inside', withoutEnlargement: true })
      .ensureAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    return toRgbaPixels(data, info);
  } catch (err) {
    throw imageErrorToAppError(err);
  }
}

/** Everything in {@link ImageAnalysis}, from an already decoded RGBA buffer (no source access). */
export async function analysePixels(
  pixels: RgbaPixels,
  options: { blurhashComponents: { x: number; y: number } },
): Promise<ImageAnalysis> {
  const [thumbPixels, blurPixels, grey, lqip] = await Promise.all([
    shrinkRgba(pixels, THUMBHASH_SIDE, { flatten: false }),
    shrinkRgba(pixels, BLURHASH_SIDE, { flatten: true }),
    greyscaleSquare(pixels, PHASH_SIDE),
    encodeLqip(pixels),
  ]);
  const { x, y } = options.blurhashComponents;
  return {
    blurhash: encodeBlurhash(blurPixels.data, blurPixels.width, blurPixels.height, x, y),
    thumbhash: Buffer.from(rgbaToThumbHash(thumbPixels.width, thumbPixels.height, thumbPixels.data)).toString(
      'base64',
    ),
    lqip,
    dominantColor: dominantColor(pixels),
    perceptualHash: perceptualHash(grey, PHASH_SIDE),
  };
}

function rawInput(pixels: RgbaPixels) {
  return sharp(pixels.data, { raw: { width: pixels.width, height: pixels.height, channels: 4 } });
}

function toRgbaPixels(data: Buffer, info: OutputInfo): RgbaPixels {
  if (info.channels !== 4 || data.length !== info.width * info.height * 4) {
    throw new Error(
      `expected ${info.width}x${info.height} RGBA at 8 bits, got ${info.channels} channels in ${data.length} bytes`,
    );
  }
  return {
    data: new Uint8ClampedArray(data.buffer, data.byteOffset, data.byteLength),
    width: info.width,
    height: info.height,
  };
}

/** A smaller RGBA copy (never larger than the input); `flatten` composites it over white first. */
async function shrinkRgba(
  pixels: RgbaPixels,
  side: number,
  options: { flatten: boolean },
): Promise<RgbaPixels> {
  if (!options.flatten && pixels.width <= side && pixels.height <= side) return pixels;
  let image = rawInput(pixels);
  if (options.flatten) image = image.flatten({ background: FLATTEN_BACKGROUND });
  const { data, info } = await image
    .resize(side, side, { fit: 'inside', withoutEnlargement: true })
    .ensureAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  return toRgbaPixels(data, info);
}

/** The pHash input: `side` x `side` greyscale, squashed to a square (aspect ratio is not kept). */
async function greyscaleSquare(pixels: RgbaPixels, side: number): Promise<Uint8Array> {
  const { data, info } = await rawInput(pixels)
    .flatten({ background: FLATTEN_BACKGROUND })
    .greyscale()
    .resize(side, side, { fit: 'fill' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 1 || data.length !== side * side) {
    throw new Error(
      `expected ${side}x${side} grey pixels, got ${info.channels} channels in ${data.length} bytes`,
    );
  }
  return data;
}

/**
 * A tiny WebP data URL, the first of `attempts` that fits {@link MAX_LQIP_BYTES}. WebP rather than
 * JPEG: it keeps transparency and is about half the size at this scale. Alpha is dropped for opaque
 * images so that no alpha plane is stored.
 */
export async function encodeLqip(
  pixels: RgbaPixels,
  attempts: readonly { side: number; quality: number }[] = LQIP_ATTEMPTS,
): Promise<string> {
  const opaque = !hasTransparency(pixels);
  for (const attempt of attempts) {
    let image = rawInput(pixels).resize(attempt.side, attempt.side, {
      fit: 'inside',
      withoutEnlargement: true,
    });
    if (opaque) image = image.removeAlpha();
    const webp = await image.webp({ quality: attempt.quality, alphaQuality: attempt.quality }).toBuffer();
    const url = `data:image/webp;base64,${webp.toString('base64')}`;
    if (url.length < MAX_LQIP_BYTES) return url;
  }
  // Unreachable in practice (an 8 px WebP is ~100 bytes); a clear error beats an oversized field.
  throw new AppError(
    'MEDIA_INVALID',
    `The image's LQIP placeholder does not fit in ${MAX_LQIP_BYTES} bytes.`,
  );
}

/** True when any pixel is not fully opaque. */
export function hasTransparency(pixels: RgbaPixels): boolean {
  for (let i = 3; i < pixels.data.length; i += 4) if (pixels.data[i] !== 255) return true;
  return false;
}

/** Levels per channel of the dominant-colour histogram: 8 x 8 x 8 = 512 bins. */
const DOMINANT_LEVELS = 8;

/**
 * The most common colour, `#rrggbb`: pixels go into a coarse 8x8x8 RGB histogram (coarse, so that
 * noise and gradients still pile up in one bin), each weighted by its alpha (transparent pixels do
 * not count), and the answer is the weighted mean of the fullest bin (exact, not the bin's centre).
 * Ties go to the lower bin index, so the result is deterministic. Null when nothing is visible.
 */
export function dominantColor(pixels: RgbaPixels): string | null {
  const shift = 8 - Math.log2(DOMINANT_LEVELS);
  const bins = DOMINANT_LEVELS ** 3;
  const weight = new Float64Array(bins);
  const sums = new Float64Array(bins * 3);
  const { data } = pixels;
  for (let i = 0; i + 3 < data.length; i += 4) {
    const r = data[i] ?? 0;
    const g = data[i + 1] ?? 0;
    const b = data[i + 2] ?? 0;
    const a = data[i + 3] ?? 0;
    if (a === 0) continue;
    const bin = ((r >> shift) * DOMINANT_LEVELS + (g >> shift)) * DOMINANT_LEVELS + (b >> shift);
    weight[bin] = (weight[bin] ?? 0) + a;
    sums[bin * 3] = (sums[bin * 3] ?? 0) + r * a;
    sums[bin * 3 + 1] = (sums[bin * 3 + 1] ?? 0) + g * a;
    sums[bin * 3 + 2] = (sums[bin * 3 + 2] ?? 0) + b * a;
  }
  let best = 0;
  for (let bin = 1; bin < bins; bin++) if ((weight[bin] ?? 0) > (weight[best] ?? 0)) best = bin;
  const total = weight[best] ?? 0;
  if (total === 0) return null;
  const hex = [0, 1, 2].map((c) =>
    Math.round((sums[best * 3 + c] ?? 0) / total)
      .toString(16)
      .padStart(2, '0'),
  );
  return `#${hex.join('')}`;
}
