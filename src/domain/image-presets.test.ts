import { describe, expect, it } from 'vitest';
import { DEFAULT_IMAGE_PRESETS, parseImagePresets, variantName } from './image-presets.js';

describe('parseImagePresets', () => {
  it('reads the default list', () => {
    expect(parseImagePresets(DEFAULT_IMAGE_PRESETS)).toEqual([
      { name: 'thumb', maxSide: 320, formats: ['webp'], quality: null },
      { name: 'preview', maxSide: 1280, formats: ['webp', 'avif'], quality: null },
    ]);
  });

  it('reads qualities, spaces, repeated formats and an empty list', () => {
    expect(parseImagePresets(' card = 640:jpeg+jpeg@82 ; ')).toEqual([
      { name: 'card', maxSide: 640, formats: ['jpeg'], quality: 82 },
    ]);
    expect(parseImagePresets('')).toEqual([]);
  });

  it.each([
    ['thumb', /name=width:format/],
    ['thumb=320', /name=width:format/],
    ['th umb=320:webp', /name=width:format/],
    ['thumb=0:webp', /width must be 1 to 8192/],
    ['thumb=9000:webp', /width must be 1 to 8192/],
    ['thumb=320:bmp', /format "bmp" is not one of webp, avif, jpeg, png/],
    ['thumb=320:webp@0', /quality must be 1 to 100/],
    ['thumb=320:webp@101', /quality must be 1 to 100/],
    ['a=1:webp;a=2:png', /preset a is listed twice/],
  ])('refuses %j', (raw, message) => {
    expect(() => parseImagePresets(raw)).toThrow(message);
  });

  it('names one rendition per preset and format', () => {
    expect(variantName('preview', 'avif')).toBe('preview.avif');
  });
});
