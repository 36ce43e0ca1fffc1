import type { OutputFormat } from './transform-options.js';

// Eager variants: named renditions every image gets during its run, so the sizes a site always
// shows (a grid thumbnail, a lightbox preview) never wait for an on-demand transform.
//
// Configured as `name=width:format[+format...][@quality]` entries separated by `;`, e.g.
// `thumb=320:webp;preview=1280:webp+avif@70`. Each (preset, format) becomes one rendition named
// `<preset>.<format>` (e.g. `preview.avif`).

export interface ImagePreset {
  /** 1-32 letters, digits, `-`, `_`. */
  name: string;
  /** Longest side in pixels; images are never enlarged. */
  maxSide: number;
  formats: OutputFormat[];
  /** null: the encoder's default for the format. */
  quality: number | null;
}

export const DEFAULT_IMAGE_PRESETS = 'thumb=320:webp;preview=1280:webp+avif';

const NAME = /^[A-Za-z0-9_-]{1,32}$/;
const FORMATS: readonly OutputFormat[] = ['webp', 'avif', 'jpeg', 'png'];
const MAX_SIDE = 8192;

/** The rendition name of one (preset, format): `thumb.webp`. */
export function variantName(preset: string, format: OutputFormat): string {
  return `${preset}.${format}`;
}

/**
 * Parses the preset list. Throws an Error whose message says which entry is wrong and what the
 * right shape is (the config layer names the variable).
 */
export function parseImagePresets(raw: string): ImagePreset[] {
  const presets: ImagePreset[] = [];
  for (const entry of raw
    .split(';')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const match = /^([^=]+?)\s*=\s*(\d{1,5}):([a-z+]+)(?:@(\d{1,3}))?$/.exec(entry);
    const name = match?.[1]?.trim() ?? '';
    if (!match || !NAME.test(name)) {
      throw new Error(
        `preset ${JSON.stringify(entry)} is not name=width:format[+format][@quality] (e.g. thumb=320:webp)`,
      );
    }
    const maxSide = Number(match[2]);
    if (maxSide < 1 || maxSide > MAX_SIDE) {
      throw new Error(`preset ${name}: width must be 1 to ${MAX_SIDE}, got ${match[2]}`);
    }
    const formats = (match[3] ?? '').split('+');
    const unknown = formats.find((f) => !(FORMATS as readonly string[]).includes(f));
    if (unknown !== undefined || formats.length === 0) {
      throw new Error(
        `preset ${name}: format ${JSON.stringify(unknown)} is not one of ${FORMATS.join(', ')}`,
      );
    }
    const quality = match[4] === undefined ? null : Number(match[4]);
    if (quality !== null && (quality < 1 || quality > 100)) {
      throw new Error(`preset ${name}: quality must be 1 to 100, got ${match[4]}`);
    }
    if (presets.some((p) => p.name === name)) throw new Error(`preset ${name} is listed twice`);
    presets.push({ name, maxSide, formats: [...new Set(formats)] as OutputFormat[], quality });
  }
  return presets;
}
