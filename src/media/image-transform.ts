import type { Region, Sharp } from 'sharp';
import {
  DEFAULT_TRANSFORM_LIMITS,
  type OutputFormat,
  outputSize,
  type Position,
  type TransformLimits,
  type TransformOptions,
} from '../domain/transform-options.js';
import { AppError } from '../errors.js';
import { type ImageLimits, type ImageProbe, imageErrorToAppError, openImage } from './image.js';

// The /img transform, imgproxy style: a pure plan (what to do, decided from the options and the
// probe before a pixel is decoded) and an ordered list of small steps that apply it to the sharp
// pipeline `openImage` gives (already upright, sRGB, 8-bit, first frame unless animated). Each step
// returns early when its part of the plan is empty, so the list reads like the spec.

export const CONTENT_TYPES: Readonly<Record<OutputFormat, string>> = {
  webp: 'image/webp',
  avif: 'image/avif',
  jpeg: 'image/jpeg',
  png: 'image/png',
};

export const EXTENSIONS: Readonly<Record<OutputFormat, string>> = {
  webp: 'webp',
  avif: 'avif',
  jpeg: 'jpg',
  png: 'png',
};

interface Rgba {
  r: number;
  g: number;
  b: number;
  alpha: number;
}

export interface TransformPlan {
  /** Keep every frame: only for animated sources encoded to WebP with `anim=1`. */
  animated: boolean;
  /** The pixel size of the result (equals `outputSize(options, probe)`). */
  output: { width: number; height: number };
  /** null: the source already has the output size. */
  resize: {
    width: number;
    height: number;
    fit: 'cover' | 'contain' | 'fill';
    /** sharp gravity or strategy name (cover and contain only). */
    position: string;
    /** Letterbox colour for contain. */
    background: Rgba;
  } | null;
  /** A window of the resized image (focus-point crops). */
  extract: Region | null;
  blur: number | null;
  /** Composite transparent pixels onto this colour (JPEG output of an image with alpha, or `bg`). */
  flatten: { r: number; g: number; b: number } | null;
  encode: { format: OutputFormat; quality: number | null };
}

/**
 * What to do for `options` on a source described by `probe`, encoding to `format` (already
 * negotiated). Pure: the sizes here are the contract the tests check on the pixels.
 *
 * Resizing: cover and contain with both sides use sharp's own fit (exactly w×h, gravity or
 * attention/entropy for cover, letterbox for contain); a focus point resizes to cover and cuts
 * the window centred on the point, clamped to the image. Every other case (one side, fill, inside,
 * outside) keeps or deliberately changes the aspect ratio to the size `outputSize` computed, so it
 * is a plain resize to that size — which is also what keeps `inside` from enlarging.
 *
 * Output limits: the parser only bounds `w` and `h`; the side they leave to the aspect ratio (one
 * side given with cover/fill/outside, or `fit=outside`) or the source's own size (no `w`/`h`) is
 * bounded here, once the source is known, so `w=8192&fit=outside` on a 100 x 10000 banner is a 400
 * instead of an 8192 x 819200 encode. An animation kept whole may not exceed one maximal still.
 * Throws TRANSFORM_INVALID.
 */
export function planTransform(
  options: TransformOptions,
  probe: Pick<ImageProbe, 'width' | 'height' | 'pages' | 'hasAlpha' | 'format'>,
  format: OutputFormat,
  limits: Pick<TransformLimits, 'maxWidth' | 'maxHeight'> = DEFAULT_TRANSFORM_LIMITS,
): TransformPlan {
  const source = { width: probe.width, height: probe.height };
  const output = outputSize(options, source);
  const animated = options.animated && format === 'webp' && probe.pages > 1;
  checkOutputSize(output, animated ? probe.pages : 1, source, limits);
  const bg = options.background === null ? null : parseHex(options.background);
  const opaqueOutput = format === 'jpeg';

  let resize: TransformPlan['resize'] = null;
  let extract: Region | null = null;
  const bothSides = options.width !== null && options.height !== null;
  const letterbox: Rgba = bg
    ? { ...bg, alpha: opaqueOutput ? 1 : bg.alpha }
    : opaqueOutput
      ? { r: 255, g: 255, b: 255, alpha: 1 }
      : { r: 0, g: 0, b: 0, alpha: 0 };

  if (bothSides && options.fit === 'cover' && options.position.kind === 'focus' && !animated) {
    // Scale so the image covers the window, then cut the window around the focus point.
    const scale = Math.max(output.width / source.width, output.height / source.height);
    const width = Math.max(output.width, Math.round(source.width * scale));
    const height = Math.max(output.height, Math.round(source.height * scale));
    resize = { width, height, fit: 'fill', position: 'centre', background: letterbox };
    extract = {
      left: clamp(Math.round(options.position.x * width - output.width / 2), 0, width - output.width),
      top: clamp(Math.round(options.position.y * height - output.height / 2), 0, height - output.height),
      width: output.width,
      height: output.height,
    };
  } else if (bothSides && (options.fit === 'cover' || options.fit === 'contain')) {
    resize = {
      ...output,
      fit: options.fit,
      position: sharpPosition(options.fit, options.position),
      background: letterbox,
    };
  } else if (output.width !== source.width || output.height !== source.height) {
    resize = { ...output, fit: 'fill', position: 'centre', background: letterbox };
  }

  let flatten: TransformPlan['flatten'] = null;
  if (bg) flatten = { r: bg.r, g: bg.g, b: bg.b };
  else if (opaqueOutput && probe.hasAlpha) flatten = { r: 255, g: 255, b: 255 };

  return {
    animated,
    output,
    resize,
    extract,
    blur: options.blur,
    flatten,
    encode: { format, quality: options.quality },
  };
}

export interface TransformInput {
  /** A local file with the source bytes (read only). */
  path: string;
  probe: ImageProbe;
  plan: TransformPlan;
  limits: ImageLimits;
  /** sharp stops the work after this long. */
  timeoutMs: number;
}

export interface TransformOutput {
  data: Buffer;
  width: number;
  /** Of one frame, for animations. */
  height: number;
  format: OutputFormat;
  contentType: string;
}

/** A transform that ran out of time (ASSETPIPE_IMG_TIMEOUT_MS): 503, the client may try again later. */
export class TransformTimeoutError extends AppError {
  constructor(seconds: number, cause: unknown) {
    super(
      'UNAVAILABLE',
      `The image transform took longer than ${seconds} s (ASSETPIPE_IMG_TIMEOUT_MS) and was stopped; ask for a smaller output or try again later.`,
      { cause },
    );
  }
}

type Step = (image: Sharp, plan: TransformPlan) => Sharp;

/** The order sharp is told things in; sharp itself runs flatten before resize and blur after it. */
const STEPS: readonly Step[] = [flattenStep, resizeStep, extractStep, blurStep, encodeStep];

/** Decodes the source, applies the plan and encodes. Errors are AppErrors a user can act on. */
export async function transformImage(input: TransformInput): Promise<TransformOutput> {
  const { plan } = input;
  const seconds = Math.max(1, Math.ceil(input.timeoutMs / 1000));
  try {
    let image = await openImage(input.path, input.probe, input.limits, { animated: plan.animated });
    for (const step of STEPS) image = step(image, plan);
    const { data, info } = await image.timeout({ seconds }).toBuffer({ resolveWithObject: true });
    return {
      data,
      width: info.width,
      height: info.pageHeight ?? info.height,
      format: plan.encode.format,
      contentType: CONTENT_TYPES[plan.encode.format],
    };
  } catch (err) {
    if (err instanceof Error && /^timeout\b|timeout: \d+% complete/i.test(err.message)) {
      throw new TransformTimeoutError(seconds, err);
    }
    throw imageErrorToAppError(err);
  }
}

function flattenStep(image: Sharp, plan: TransformPlan): Sharp {
  if (!plan.flatten) return image;
  return image.flatten({ background: plan.flatten });
}

function resizeStep(image: Sharp, plan: TransformPlan): Sharp {
  const { resize } = plan;
  if (!resize) return image;
  return image.resize(resize.width, resize.height, {
    fit: resize.fit,
    position: resize.position,
    background: resize.background,
  });
}

function extractStep(image: Sharp, plan: TransformPlan): Sharp {
  // After resize in call order: sharp then cuts from the resized image.
  return plan.extract ? image.extract(plan.extract) : image;
}

function blurStep(image: Sharp, plan: TransformPlan): Sharp {
  return plan.blur === null ? image : image.blur(plan.blur);
}

function encodeStep(image: Sharp, plan: TransformPlan): Sharp {
  // No withMetadata/keepMetadata: the output carries no EXIF (GPS included) and is tagged sRGB.
  const quality = plan.encode.quality ?? undefined;
  switch (plan.encode.format) {
    case 'webp':
      return image.webp({ quality });
    case 'avif':
      return image.avif({ quality });
    case 'jpeg':
      return image.jpeg({ quality });
    case 'png':
      // PNG is lossless: `q` does not apply (a palette would change colours the user did not ask for).
      return image.png();
  }
}

function sharpPosition(fit: 'cover' | 'contain', position: Position): string {
  if (position.kind === 'gravity') return position.value;
  // Smart crops only mean something when cropping; contain shows the whole image anyway.
  if (position.kind === 'strategy') return fit === 'cover' ? position.value : 'centre';
  return 'centre';
}

/** `rrggbb` or `rrggbbaa` (as normalised by the transform parser) to sharp's colour object. */
function parseHex(hex: string): Rgba {
  const byte = (at: number) => Number.parseInt(hex.slice(at, at + 2), 16);
  return { r: byte(0), g: byte(2), b: byte(4), alpha: hex.length === 8 ? byte(6) / 255 : 1 };
}

function checkOutputSize(
  output: { width: number; height: number },
  frames: number,
  source: { width: number; height: number },
  limits: Pick<TransformLimits, 'maxWidth' | 'maxHeight'>,
): void {
  const { width, height } = output;
  const fits =
    width <= limits.maxWidth &&
    height <= limits.maxHeight &&
    width * height * frames <= limits.maxWidth * limits.maxHeight;
  if (fits) return;
  const size = `${width} x ${height} pixels${frames > 1 ? ` x ${frames} frames` : ''}`;
  throw new AppError(
    'TRANSFORM_INVALID',
    `The result would be ${size} for this ${source.width} x ${source.height} image, over the output limit of ${limits.maxWidth} x ${limits.maxHeight} (ASSETPIPE_IMG_MAX_SIDE); give a smaller w or h, or use fit=inside.`,
  );
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}
