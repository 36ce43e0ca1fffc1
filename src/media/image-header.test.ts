import { describe, expect, it } from 'vitest';
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

const header = (over: Partial<ImageHeader>): ImageHeader => ({
  format: 'png',
  width: 100,
  height: 50,
  pages: 1,
  ...over,
});

describe('decodedFrames / isAnimated', () => {
  it.each<[string, number, boolean, number]>([
    ['gif', 1, false, 1],
    ['gif', 12, true, 12],
    ['webp', 3, true, 3],
    ['tiff', 40, false, 1],
    ['heif', 4, false, 1],
    ['png', 1, false, 1],
  ])('%s with %i pages: animated %s, %i decoded frames', (format, pages, animated, frames) => {
    expect(isAnimated({ format, pages })).toBe(animated);
    expect(decodedFrames({ format, pages })).toBe(frames);
  });
});

describe('pixelLimitError', () => {
  it.each<[string, ImageHeader, number, string | undefined]>([
    ['at the limit', header({ width: 1000, height: 1000 }), 1_000_000, undefined],
    [
      'one pixel over',
      header({ width: 1001, height: 1000 }),
      1_000_000,
      "The image is 1001 x 1000 pixels (1.0 MP), over this server's limit of 1.0 MP (ASSETPIPE_MAX_INPUT_PIXELS). Upload a smaller image.",
    ],
    [
      'a bomb',
      header({ width: 30000, height: 30000 }),
      50_000_000,
      "The image is 30000 x 30000 pixels (900 MP), over this server's limit of 50 MP (ASSETPIPE_MAX_INPUT_PIXELS). Upload a smaller image.",
    ],
    [
      'frames of an animation are summed',
      header({ format: 'gif', width: 1000, height: 1000, pages: 60 }),
      50_000_000,
      "The image is 1000 x 1000 pixels x 60 frames (60 MP), over this server's limit of 50 MP (ASSETPIPE_MAX_INPUT_PIXELS). Upload a smaller image.",
    ],
    [
      'pages of a TIFF are not',
      header({ format: 'tiff', width: 1000, height: 1000, pages: 60 }),
      50_000_000,
      undefined,
    ],
  ])('%s', (_name, h, limit, message) => {
    const err = pixelLimitError(h, limit);
    expect(err?.message).toBe(message);
    if (message) expect(err).toMatchObject({ code: 'IMAGE_TOO_LARGE', status: 422 });
  });
});

describe('displaySize / validOrientation', () => {
  it.each<[number | undefined, number | null, [number, number]]>([
    [undefined, null, [100, 50]],
    [1, 1, [100, 50]],
    [4, 4, [100, 50]],
    [5, 5, [50, 100]],
    [6, 6, [50, 100]],
    [8, 8, [50, 100]],
    [9, null, [100, 50]],
    [0, null, [100, 50]],
  ])('orientation %s', (orientation, valid, size) => {
    expect(validOrientation(orientation)).toBe(valid);
    const { width, height } = displaySize(header({ orientation }));
    expect([width, height]).toEqual(size);
  });
});

describe('colorSpaceName', () => {
  it.each<[string, string | null, string]>([
    ['srgb', null, 'srgb'],
    ['srgb', 'sRGB IEC61966-2.1', 'srgb'],
    ['srgb', 'Display P3', 'p3'],
    ['srgb', 'sP3C', 'p3'],
    ['srgb', 'Adobe RGB (1998)', 'adobe-rgb'],
    ['srgb', 'ProPhoto RGB', 'prophoto'],
    ['srgb', 'ITU-R BT.2020', 'rec2020'],
    ['srgb', 'Generic RGB Profile', 'rgb'],
    ['rgb16', null, 'srgb'],
    ['rgb16', 'Display P3', 'p3'],
    ['cmyk', 'U.S. Web Coated (SWOP) v2', 'cmyk'],
    ['b-w', null, 'grey'],
    ['grey16', 'Dot Gain 20%', 'grey'],
    ['lab', null, 'lab'],
    ['scrgb', null, 'scrgb'],
  ])('%s with profile %s -> %s', (space, description, expected) => {
    expect(colorSpaceName(space, description)).toBe(expected);
  });
});

describe('bitsPerSample', () => {
  it.each([
    ['uchar', 8],
    ['char', 8],
    ['ushort', 16],
    ['short', 16],
    ['float', 32],
    ['double', 64],
  ])('%s -> %i', (depth, bits) => {
    expect(bitsPerSample(depth)).toBe(bits);
  });
});
