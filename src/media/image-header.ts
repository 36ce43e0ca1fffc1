import { AppError } from '../errors.js';

// Pure decisions over what an image's header declares: how many pixels a decode will produce, the
// displayed size, the colour space word and the bit depth. No sharp here, so each rule has a table
// test (image-header.test.ts) and the upload check and the pipeline's probe share them.

/** What the header declares, in sharp's vocabulary (`Metadata`), read without decoding pixels. */
export interface ImageHeader {
  format: string;
  /** Stored width of one page/frame (before the EXIF orientation). */
  width: number;
  /** Stored height of one page/frame (before the EXIF orientation). */
  height: number;
  /** Pages or frames in the file (1 when the header does not say). */
  pages: number;
  orientation?: number | undefined;
}

/** Formats whose pages are frames of one animation (the others' pages are separate pictures). */
const ANIMATED_FORMATS: ReadonlySet<string> = new Set(['gif', 'webp']);

/** An animated GIF/WebP: a format that animates, with more than one frame. */
export function isAnimated(header: Pick<ImageHeader, 'format' | 'pages'>): boolean {
  return ANIMATED_FORMATS.has(header.format) && header.pages > 1;
}

/**
 * Frames a full decode produces: every frame of an animation (a transform may keep them all, and
 * libvips holds them as one tall strip), but only the first page of a multi-page document such as a
 * TIFF or HEIF collection, because that is the only page we ever decode.
 */
export function decodedFrames(header: Pick<ImageHeader, 'format' | 'pages'>): number {
  return isAnimated(header) ? header.pages : 1;
}

/** width x height x decoded frames. */
export function decodedPixels(header: ImageHeader): number {
  return header.width * header.height * decodedFrames(header);
}

function megapixels(pixels: number): string {
  return `${(pixels / 1e6).toFixed(pixels < 1e7 ? 1 : 0)} MP`;
}

/**
 * The refusal for a header that declares more pixels than `maxInputPixels` (a decompression bomb or
 * simply too big a picture), or `undefined` when it fits. Decided before any pixel is decoded.
 */
export function pixelLimitError(header: ImageHeader, maxInputPixels: number): AppError | undefined {
  const frames = decodedFrames(header);
  const pixels = decodedPixels(header);
  if (pixels <= maxInputPixels) return undefined;
  return new AppError(
    'IMAGE_TOO_LARGE',
    `The image is ${header.width} x ${header.height} pixels${frames > 1 ? ` x ${frames} frames` : ''} (${megapixels(pixels)}), over this server's limit of ${megapixels(maxInputPixels)} (ASSETPIPE_MAX_INPUT_PIXELS). Upload a smaller image.`,
  );
}

/** The EXIF orientation tag when it is a valid one (1-8), else `null`. */
export function validOrientation(value: number | undefined): number | null {
  return value !== undefined && Number.isInteger(value) && value >= 1 && value <= 8 ? value : null;
}

/** Width and height as displayed: orientations 5-8 turn the picture by 90 degrees. */
export function displaySize(header: ImageHeader): { width: number; height: number } {
  const orientation = validOrientation(header.orientation);
  return orientation !== null && orientation >= 5
    ? { width: header.height, height: header.width }
    : { width: header.width, height: header.height };
}

/**
 * Bits per channel of the decoded pixels, from libvips' band format (`uchar`, `ushort`, ...).
 * Palette and 1/2/4-bit PNGs decode to 8 bits, so they say 8.
 */
export function bitsPerSample(depth: string): number {
  switch (depth) {
    case 'ushort':
    case 'short':
      return 16;
    case 'uint':
    case 'int':
    case 'float':
    case 'complex':
      return 32;
    case 'double':
    case 'dpcomplex':
      return 64;
    default:
      return 8;
  }
}

/**
 * The source's colour space as one lowercase word:
 *
 * - `srgb`: sRGB, declared by an sRGB profile or (as the web assumes) by no profile at all;
 * - `p3`, `adobe-rgb`, `prophoto`, `rec2020`: RGB in a wide-gamut profile we recognise by name;
 * - `rgb`: RGB in an embedded profile we do not name (a camera's or a monitor's own);
 * - `cmyk`, `grey`, `lab`: those models, whatever their profile;
 * - otherwise libvips' own interpretation name (`scrgb`, `xyz`, `multiband`, ...).
 *
 * The bit depth is not part of the word (libvips calls 16-bit sRGB `rgb16`, 16-bit grey `grey16`):
 * it is `bitsPerSample`, so a 16-bit sRGB PNG is `srgb` with 16 bits.
 */
export function colorSpaceName(space: string, iccDescription: string | null): string {
  switch (space) {
    case 'cmyk':
      return 'cmyk';
    case 'b-w':
    case 'grey16':
      return 'grey';
    case 'lab':
    case 'labq':
    case 'labs':
      return 'lab';
    case 'srgb':
    case 'rgb16':
    case 'rgb':
      return rgbProfileName(iccDescription);
    default:
      return space;
  }
}

function rgbProfileName(description: string | null): string {
  if (description === null) return 'srgb';
  // "Display P3", Apple's "P3 D65", libvips' compact "sP3C", "DCI-P3".
  if (/p3/i.test(description)) return 'p3';
  if (/adobe ?rgb|a98|compatible with adobe/i.test(description)) return 'adobe-rgb';
  if (/prophoto|romm/i.test(description)) return 'prophoto';
  if (/2020/.test(description)) return 'rec2020';
  if (/srgb|61966/i.test(description)) return 'srgb';
  return 'rgb';
}
