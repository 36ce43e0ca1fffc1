import type { StepOutput } from '../step.js';

// The probe step's output comes back from the catalog as JSON (a resumed run reads what an earlier
// attempt, possibly an older release, stored), so it is read defensively: a missing or mistyped
// field becomes null, never an exception or a wrong type on the asset record.

export function num(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

export function str(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

export function record(value: unknown): Record<string, unknown> | null {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : null;
}

/** What the decoding steps need to open the original: its format and frame/page count. */
export interface ImageSource {
  format: string;
  pages: number;
  animated: boolean;
}

export function imageSource(probe: StepOutput | undefined): ImageSource {
  const pages = Math.max(1, num(probe?.pages) ?? 1);
  const format = str(probe?.format) ?? '';
  return {
    format,
    pages,
    // An output without `animated` (an older probe): only GIF and WebP frames are an animation; a
    // multi-page TIFF's pages are not.
    animated:
      typeof probe?.animated === 'boolean'
        ? probe.animated
        : pages > 1 && (format === 'gif' || format === 'webp'),
  };
}
