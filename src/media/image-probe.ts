import { readFile, stat } from 'node:fs/promises';
import type { Metadata } from 'sharp';
import { type CuratedExif, curateExif, parseExif } from '../domain/exif.js';
import { AppError } from '../errors.js';
import { imageErrorToAppError } from './image-errors.js';
import {
  bitsPerSample,
  colorSpaceName,
  decodedFrames,
  displaySize,
  type ImageHeader,
  isAnimated,
  pixelLimitError,
  validOrientation,
} from './image-header.js';
import { iccDescription } from './image-icc.js';
import { sharp } from './image-sharp.js';
import { svgRefusal } from './svg-guard.js';

export interface ImageLimits {
  /** Largest accepted width x height x frames (frames of animations summed; first page of documents). */
  maxInputPixels: number;
}

/** What the pipeline's probe step records; every field is JSON. */
export interface ImageProbe {
  /** sharp's decoder name: `jpeg`, `png`, `webp`, `gif`, `tiff`, `heif`, `svg`, ... */
  format: string;
  /** As displayed, i.e. after the EXIF orientation is applied; for animations, one frame. */
  width: number;
  height: number;
  /** Pages or frames in the file (1 for a still image). */
  pages: number;
  /** An animated GIF/WebP with more than one frame (a multi-page TIFF is not an animation). */
  animated: boolean;
  /** Frames of the animation; 1 for still images and for multi-page documents. */
  frames: number;
  hasAlpha: boolean;
  /** The source's colour space as one word: see `colorSpaceName` in image-header.ts. */
  colorSpace: string;
  /** Bits per channel of the source's pixels (8 or 16; 32 for float TIFFs). */
  bitsPerSample: number;
  /** The EXIF orientation tag (1-8), `null` when there is none. */
  orientation: number | null;
  /** Camera facts from EXIF (see src/domain/exif.ts), `null` when there are none. */
  exif: CuratedExif | null;
}

export interface ProbeImageOptions {
  /** Copy GPS coordinates from EXIF (the project's `exposeGps`). @default false */
  exposeGps?: boolean;
}

/** SVG documents larger than this are refused before librsvg parses them. */
export const MAX_SVG_BYTES = 8 * 1024 * 1024;

/**
 * An SVG's bytes, never its path: librsvg then has no base URL, so references to other files or URLs
 * cannot be resolved (see `openImage`). Refuses documents over {@link MAX_SVG_BYTES}.
 */
export async function readSvgDocument(path: string): Promise<Buffer> {
  const { size } = await stat(path);
  if (size > MAX_SVG_BYTES) {
    throw new AppError(
      'MEDIA_INVALID',
      `The SVG document is ${(size / 1024 / 1024).toFixed(1)} MiB, larger than the ${MAX_SVG_BYTES / 1024 / 1024} MiB this server rasterises.`,
    );
  }
  const document = await readFile(path);
  const refusal = svgRefusal(document.toString('utf8'));
  if (refusal) throw new AppError('MEDIA_INVALID', refusal);
  return document;
}

/**
 * Reads the header only (no pixel decode) and refuses a picture over the pixel limit (frames of an
 * animation summed, first page of a document) before anything decodes it.
 */
export async function probeImage(
  path: string,
  limits: ImageLimits,
  options: ProbeImageOptions = {},
): Promise<ImageProbe> {
  let meta: Metadata;
  try {
    // No `pages: -1`: width/height are then those of the first page/frame and `pages` still counts
    // them all. limitInputPixels is off because a header read cannot overflow memory and the check
    // below (which also counts frames) gives the better message.
    meta = await sharp(path, { limitInputPixels: false }).metadata();
    if (meta.format === 'svg') {
      // Read the SVG again from bytes, as openImage will render it: same sandbox, same size.
      meta = await sharp(await readSvgDocument(path), { limitInputPixels: false }).metadata();
    }
  } catch (err) {
    throw imageErrorToAppError(err);
  }
  const header = headerOf(meta);
  if (!header.width || !header.height) {
    throw new AppError('MEDIA_INVALID', 'The image declares no width or height; it cannot be shown.');
  }
  const tooLarge = pixelLimitError(header, limits.maxInputPixels);
  if (tooLarge) throw tooLarge;
  const { width, height } = displaySize(header);
  return {
    format: header.format,
    width,
    height,
    pages: header.pages,
    animated: isAnimated(header),
    frames: decodedFrames(header),
    hasAlpha: meta.hasAlpha,
    colorSpace: colorSpaceName(meta.space, iccDescription(meta.icc)),
    bitsPerSample: bitsPerSample(meta.depth),
    orientation: validOrientation(meta.orientation),
    exif: curateExif(parseExif(meta.exif), { exposeGps: options.exposeGps === true }),
  };
}

function headerOf(meta: Metadata): ImageHeader {
  return {
    format: meta.format,
    width: meta.width,
    height: meta.pageHeight ?? meta.height,
    pages: Math.max(1, meta.pages ?? 1),
    orientation: meta.orientation,
  };
}

/**
 * The header an upload's first bytes declare, or `undefined` when it is not all in them (a TIFF
 * whose directory sits at the end, an animated WebP) or they cannot be parsed. For a GIF, frames
 * beyond the prefix are not counted: a lower bound, enough to refuse the obvious bombs early.
 */
export async function readHeaderFromPrefix(head: Buffer): Promise<ImageHeader | undefined> {
  try {
    const meta = await sharp(head, { limitInputPixels: false }).metadata();
    const header = headerOf(meta);
    return header.width > 0 && header.height > 0 ? header : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Refuses, at upload, an image whose first bytes already declare more pixels than the limit (a
 * decompression bomb: a few bytes declaring 30000 x 30000 pixels), so it is never stored. When the
 * header is not readable from the prefix this lets the upload through: the pipeline's probe reads
 * the whole file's header and decides.
 */
export async function checkImagePrefix(head: Buffer, limits: ImageLimits): Promise<void> {
  const header = await readHeaderFromPrefix(head);
  if (!header) return;
  const tooLarge = pixelLimitError(header, limits.maxInputPixels);
  if (tooLarge) throw tooLarge;
}
