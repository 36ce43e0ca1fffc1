import sharp, { type Metadata } from 'sharp';
import { AppError } from '../errors.js';

// The only module that touches sharp/libvips. Everything here reads from a local file path:
// the pipeline fetches the original from the blob store into its scratch directory once.

// libvips caches operations for reuse across images; a media server sees each image once, so the
// cache only holds memory. Concurrency is bounded by our own worker count instead.
sharp.cache(false);

export interface ImageLimits {
  /** Largest accepted width x height x frames. */
  maxInputPixels: number;
}

export interface ImageProbe {
  format: string;
  /** As displayed, i.e. after the EXIF orientation is applied. */
  width: number;
  height: number;
  /** Frames of an animation or pages of a document; 1 for still images. */
  pages: number;
  hasAlpha: boolean;
  orientation: number | null;
  space: string;
}

function megapixels(pixels: number): string {
  return `${(pixels / 1e6).toFixed(pixels < 1e7 ? 1 : 0)} MP`;
}

/** Turns a libvips/sharp error into a reason a person understands (the raw text stays in `cause`). */
export function imageErrorToAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  const raw = err instanceof Error ? err.message : String(err);
  if (/pixel limit/i.test(raw)) {
    return new AppError('IMAGE_TOO_LARGE', 'The image has more pixels than this server accepts.', {
      cause: err,
    });
  }
  if (/premature end|truncated|unexpected end|not enough data|end of (jpeg|file)|EOF/i.test(raw)) {
    return new AppError(
      'MEDIA_INVALID',
      'The image file is truncated or incomplete; upload the complete file again.',
      {
        cause: err,
      },
    );
  }
  if (
    /unsupported image format|bad seek|corrupt|invalid|not a known|vipsjpeg|vipspng|libspng|gifload|webp|heif|tiff/i.test(
      raw,
    )
  ) {
    return new AppError(
      'MEDIA_INVALID',
      `The image data is damaged and cannot be decoded (${firstLine(raw)}).`,
      {
        cause: err,
      },
    );
  }
  return new AppError('MEDIA_INVALID', `The image cannot be decoded (${firstLine(raw)}).`, { cause: err });
}

function firstLine(text: string): string {
  const line = text.split('\n').find((l) => l.trim() !== '') ?? text;
  return line.trim().slice(0, 200);
}

function open(path: string, limits: ImageLimits) {
  // failOn 'warning' makes libvips stop at the first damaged byte instead of padding the image
  // with grey: a truncated upload must fail, not publish half a picture.
  return sharp(path, { failOn: 'warning', limitInputPixels: limits.maxInputPixels });
}

/** Reads the header only (no pixel decode) and enforces the pixel limit, frames included. */
export async function probeImage(path: string, limits: ImageLimits): Promise<ImageProbe> {
  let meta: Metadata;
  try {
    // Header reads cannot overflow memory, so the pixel check below (which also counts frames)
    // gives the better message.
    meta = await sharp(path, { limitInputPixels: false, pages: -1 }).metadata();
  } catch (err) {
    throw imageErrorToAppError(err);
  }
  const pages = Math.max(1, meta.pages ?? 1);
  const frameHeight = meta.pageHeight ?? meta.height;
  const pixels = meta.width * frameHeight * pages;
  if (!meta.width || !frameHeight) {
    throw new AppError('MEDIA_INVALID', 'The image declares no width or height.');
  }
  if (pixels > limits.maxInputPixels) {
    throw new AppError(
      'IMAGE_TOO_LARGE',
      `The image is ${meta.width} x ${frameHeight} pixels${pages > 1 ? ` x ${pages} frames` : ''} (${megapixels(pixels)}), over this server's limit of ${megapixels(limits.maxInputPixels)} (ASSETPIPE_MAX_INPUT_PIXELS).`,
    );
  }
  const rotated = meta.orientation !== undefined && meta.orientation >= 5;
  const width = rotated ? frameHeight : meta.width;
  const height = rotated ? meta.width : frameHeight;
  return {
    format: meta.format,
    width,
    height,
    pages,
    hasAlpha: meta.hasAlpha,
    orientation: meta.orientation ?? null,
    space: meta.space,
  };
}

export interface RawPixels {
  data: Uint8ClampedArray;
  width: number;
  height: number;
}

/**
 * Decodes the first frame, upright, shrunk to fit `maxSide`, as RGBA. Also the full-decode check:
 * damaged pixel data fails here with a `MEDIA_INVALID` reason.
 */
export async function decodeSmallRgba(
  path: string,
  maxSide: number,
  limits: ImageLimits,
): Promise<RawPixels> {
  try {
    const { data, info } = await open(path, limits)
      .autoOrient()
      .resize(maxSide, maxSide, { fit: 'inside', withoutEnlargement: true })
      .ensureAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    return {
      data: new Uint8ClampedArray(data.buffer, data.byteOffset, data.byteLength),
      width: info.width,
      height: info.height,
    };
  } catch (err) {
    throw imageErrorToAppError(err);
  }
}

export interface EncodedImage {
  data: Buffer;
  width: number;
  height: number;
  contentType: string;
}

/** A small upright WebP of the first frame, without metadata. */
export async function renderWebpThumbnail(
  path: string,
  options: { maxSide: number; quality: number },
  limits: ImageLimits,
): Promise<EncodedImage> {
  try {
    const { data, info } = await open(path, limits)
      .autoOrient()
      .resize(options.maxSide, options.maxSide, { fit: 'inside', withoutEnlargement: true })
      .webp({ quality: options.quality })
      .toBuffer({ resolveWithObject: true });
    return { data, width: info.width, height: info.height, contentType: 'image/webp' };
  } catch (err) {
    throw imageErrorToAppError(err);
  }
}
