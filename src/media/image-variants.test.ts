import { describe, expect, it } from 'vitest';
import { parseImagePresets } from '../domain/image-presets.js';
import { keepsAnimation, planVariants } from './image-variants.js';

describe('planVariants', () => {
  it('makes one variant per preset and format, in config order', () => {
    expect(planVariants(parseImagePresets('thumb=320:webp;preview=1280:webp+avif@60'))).toEqual([
      { name: 'thumb.webp', preset: 'thumb', format: 'webp', maxSide: 320, quality: null },
      { name: 'preview.webp', preset: 'preview', format: 'webp', maxSide: 1280, quality: 60 },
      { name: 'preview.avif', preset: 'preview', format: 'avif', maxSide: 1280, quality: 60 },
    ]);
  });

  it('plans nothing without presets', () => {
    expect(planVariants([])).toEqual([]);
  });
});

describe('keepsAnimation', () => {
  it.each([
    ['webp', true, true],
    ['avif', true, false],
    ['jpeg', true, false],
    ['png', true, false],
    ['webp', false, false],
  ] as const)('%s from an animated source: %s -> %s', (format, animated, expected) => {
    expect(keepsAnimation(format, animated)).toBe(expected);
  });
});
