import type { Sharp } from 'sharp';
import { isAnimated } from './image-header.js';
import { type ImageLimits, type ImageProbe, readSvgDocument } from './image-probe.js';
import { sharp } from './image-sharp.js';

export interface OpenImageOptions {
  /**
   * Keep every frame of an animated GIF/WebP (as one tall strip with `pageHeight`, delays and loop
   * count carried to the output); otherwise the first frame only. @default false
   */
  animated?: boolean;
}

/**
 * The one way pixels are read: a sharp pipeline over the original that is already normalised —
 * upright by EXIF orientation, sRGB (CMYK and embedded ICC profiles converted), 8 bits per channel
 * (16-bit and grey inputs expanded/reduced), the first page of multi-page files, the first frame
 * of animations unless `animated` is asked. Steps and the /img transform build on it and never call
 * sharp on an original themselves. Encoders called on it write no EXIF, XMP or ICC data (sharp
 * strips metadata unless told to keep it), so derived images carry no GPS or camera serials.
 *
 * SVG: the document is handed to librsvg as bytes, without a file name, so it has no base URL and
 * any reference to another file or URL (`<image href="file:///...">`, external CSS) cannot be
 * resolved: it is rasterised as a sandboxed, self-contained picture.
 */
export async function openImage(
  path: string,
  probe: Pick<ImageProbe, 'format' | 'pages'>,
  limits: ImageLimits,
  options: OpenImageOptions = {},
): Promise<Sharp> {
  const animated = options.animated === true && isAnimated(probe);
  const common = {
    // failOn 'warning' makes libvips stop at the first damaged byte instead of padding the image
    // with grey: a truncated upload must fail, not publish half a picture.
    failOn: 'warning',
    // Checked against everything decoded: the whole strip of an animation, one page otherwise.
    limitInputPixels: limits.maxInputPixels,
    // `animated: false` loads one page: page 0 of a TIFF, the first frame of a GIF/WebP, the primary
    // image of a HEIF collection.
    animated,
  } as const;
  const image = probe.format === 'svg' ? sharp(await readSvgDocument(path), common) : sharp(path, common);
  // autoOrient before anything else: stripping metadata without orienting first ships rotated
  // pictures. toColourspace('srgb') converts CMYK (with sharp's built-in profile when the file has
  // none), grey and embedded ICC profiles to sRGB, and 16-bit samples to 8-bit.
  return image.autoOrient().toColourspace('srgb');
}
