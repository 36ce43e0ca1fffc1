import type { OutputInfo, Sharp } from 'sharp';
import { type ImagePreset, variantName } from '../domain/image-presets.js';
import type { OutputFormat } from '../domain/transform-options.js';
import { type ImageLimits, type ImageProbe, imageErrorToAppError, openImage } from './image.js';
import { sharp } from './image-sharp.js';
import { CONTENT_TYPES } from './image-transform.js';

// Eager variants: every (preset, format) of the configured presets, rendered from the normalised
// image (upright, sRGB, 8-bit, no metadata: EXIF and GPS never reach a derived file).

/** One rendition to make: a preset in one of its formats. */
export interface VariantSpec {
  /** Rendition name, `<preset>.<format>` (e.g. `thumb.webp`). */
  name: string;
  preset: string;
  format: OutputFormat;
  /** Longest side; smaller images are never enlarged. */
  maxSide: number;
  /** null: {@link DEFAULT_QUALITY} for the format (PNG: lossless). */
  quality: number | null;
}

export interface RenderedVariant {
  name: string;
  preset: string;
  format: OutputFormat;
  contentType: string;
  /** One frame's size (animations: each frame). */
  width: number;
  height: number;
  /** Frames in the file: > 1 only for an animated WebP made from an animated source. */
  pages: number;
  data: Buffer;
}

/** Quality of the lossy formats when a preset does not set one: each encoder's own default. */
export const DEFAULT_QUALITY = { webp: 80, avif: 50, jpeg: 80 } as const;

/**
 * AVIF encoder effort (0-9; sharp's default 4). Measured here (2 cores, one process) on a 12 MP
 * photo's 1280 px variant: effort 4 took 4.3 s and 90 KB; effort 3 0.9 s and 90 KB; effort 2
 * 0.8 s and 100 KB; effort 0 0.13 s and 100 KB. Effort 3 gives effort 4's file for a fifth of the
 * time; the eager variant sits between upload and `ready`, so the slow default is not worth it.
 */
export const AVIF_EFFORT = 3;

/** Every (preset, format) pair, in config order: the renditions a run must produce. Pure. */
export function planVariants(presets: readonly ImagePreset[]): VariantSpec[] {
  return presets.flatMap((preset) =>
    preset.formats.map((format) => ({
      name: variantName(preset.name, format),
      preset: preset.name,
      format,
      maxSide: preset.maxSide,
      quality: preset.quality,
    })),
  );
}

/**
 * Whether a variant keeps an animated source's animation. Only WebP does: sharp cannot write
 * animated AVIF, and JPEG/PNG have no frames, so those show the first frame (like the placeholders).
 * Pure.
 */
export function keepsAnimation(format: OutputFormat, animatedSource: boolean): boolean {
  return animatedSource && format === 'webp';
}

/** Applies the format's encoder with our settings. */
function encode(image: Sharp, format: OutputFormat, quality: number | null): Sharp {
  switch (format) {
    case 'webp':
      return image.webp({ quality: quality ?? DEFAULT_QUALITY.webp });
    case 'avif':
      return image.avif({ quality: quality ?? DEFAULT_QUALITY.avif, effort: AVIF_EFFORT });
    case 'jpeg':
      // JPEG has no alpha: composite over white (the usual page background) rather than libvips's
      // black. mozjpeg: 14-18 % smaller files; ~150 ms instead of ~20 ms at 1280 px (measured
      // here), worth it for a file made once and served many times.
      return image
        .flatten({ background: '#ffffff' })
        .jpeg({ quality: quality ?? DEFAULT_QUALITY.jpeg, mozjpeg: true });
    case 'png':
      // PNG is lossless; a preset quality asks for palette quantisation (much smaller, lossy).
      return quality === null ? image.png() : image.png({ palette: true, quality });
  }
}

function fitInside(image: Sharp, maxSide: number): Sharp {
  return image.resize(maxSide, maxSide, { fit: 'inside', withoutEnlargement: true });
}

export interface RenderVariantsOptions {
  path: string;
  probe: Pick<ImageProbe, 'format' | 'pages' | 'animated'>;
  limits: ImageLimits;
  variants: readonly VariantSpec[];
}

/**
 * Renders the variants. Still variants share one decode: the source is decoded and shrunk once to
 * the largest still variant, and every still variant is resized and encoded from that raw buffer
 * (a 12 MP JPEG to four still variants, 320 and 1280 px in WebP and JPEG: 375 ms against 460 ms
 * with one decode per variant, measured here). Animated WebP variants each decode every frame of the source themselves.
 */
export async function renderVariants(options: RenderVariantsOptions): Promise<RenderedVariant[]> {
  const { path, probe, limits, variants } = options;
  const animatedSource = probe.animated;
  const still = variants.filter((v) => !keepsAnimation(v.format, animatedSource));
  const rendered = new Map<string, RenderedVariant>();
  try {
    if (still.length > 0) {
      const largest = Math.max(...still.map((v) => v.maxSide));
      const { data, info } = await fitInside(await openImage(path, probe, limits), largest)
        .raw({ depth: 'uchar' })
        .toBuffer({ resolveWithObject: true });
      const raw = { width: info.width, height: info.height, channels: info.channels };
      // One at a time: each encoder already uses libvips's thread pool, and a run should not hold
      // several encoders' memory at once while other runs share the machine.
      for (const variant of still) {
        const out = await encode(
          fitInside(sharp(data, { raw }), variant.maxSide),
          variant.format,
          variant.quality,
        ).toBuffer({ resolveWithObject: true });
        rendered.set(variant.name, describe(variant, out.data, out.info));
      }
    }
    for (const variant of variants.filter((v) => keepsAnimation(v.format, animatedSource))) {
      const image = await openImage(path, probe, limits, { animated: true });
      const out = await encode(fitInside(image, variant.maxSide), variant.format, variant.quality).toBuffer({
        resolveWithObject: true,
      });
      rendered.set(variant.name, describe(variant, out.data, out.info));
    }
  } catch (err) {
    throw imageErrorToAppError(err);
  }
  // Back in the order they were asked for.
  return variants.map((v) => rendered.get(v.name)).filter((v): v is RenderedVariant => v !== undefined);
}

function describe(variant: VariantSpec, data: Buffer, info: OutputInfo): RenderedVariant {
  const pages = info.pages ?? 1;
  return {
    name: variant.name,
    preset: variant.preset,
    format: variant.format,
    contentType: CONTENT_TYPES[variant.format],
    width: info.width,
    height: pages > 1 ? (info.pageHeight ?? Math.round(info.height / pages)) : info.height,
    pages,
    data,
  };
}
