import type { AssetFacts } from '../../domain/asset.js';
import type { StepOutput } from '../step.js';
import { num, record, str } from './probe-output.js';

/** One eager variant as listed on the asset record (`extra.variants`). */
export interface VariantFact {
  name: string;
  preset: string;
  format: string;
  width: number | null;
  height: number | null;
  size: number | null;
  contentType: string;
}

function variantFacts(value: unknown): VariantFact[] {
  if (!Array.isArray(value)) return [];
  return value.flatMap((item) => {
    const v = record(item);
    const name = str(v?.name);
    if (v === null || name === null) return [];
    return [
      {
        name,
        preset: str(v.preset) ?? name.split('.')[0] ?? name,
        format: str(v.format) ?? '',
        width: num(v.width),
        height: num(v.height),
        size: num(v.size),
        contentType: str(v.contentType) ?? 'application/octet-stream',
      },
    ];
  });
}

/**
 * The asset record's facts from the image steps' outputs (probe, placeholders, variants). Pure and
 * tolerant: a missing step output or field becomes null (or the still-image default).
 */
export function imageFacts(outputs: Readonly<Record<string, StepOutput>>): AssetFacts {
  const probe = outputs.probe ?? {};
  const placeholders = outputs.placeholders ?? {};
  const pages = num(probe.pages) ?? 1;
  return {
    width: num(probe.width),
    height: num(probe.height),
    format: str(probe.format),
    blurhash: str(placeholders.blurhash),
    perceptualHash: str(placeholders.perceptualHash),
    extra: {
      hasAlpha: probe.hasAlpha === true,
      animated: typeof probe.animated === 'boolean' ? probe.animated : false,
      frames: num(probe.frames) ?? pages,
      pages,
      colorSpace: str(probe.colorSpace) ?? str(probe.space),
      bitsPerSample: num(probe.bitsPerSample),
      exif: record(probe.exif),
      dominantColor: str(placeholders.dominantColor),
      thumbhash: str(placeholders.thumbhash),
      lqip: str(placeholders.lqip),
      variants: variantFacts(outputs.variants?.variants),
    },
  };
}
