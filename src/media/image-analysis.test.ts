import { describe, expect, it } from 'vitest';
import { dominantColor, hasTransparency, type RgbaPixels } from './image-analysis.js';

/** A 1-row image of the given [r, g, b, a] pixels. */
function row(...pixels: [number, number, number, number][]): RgbaPixels {
  return { data: new Uint8ClampedArray(pixels.flat()), width: pixels.length, height: 1 };
}

describe('dominantColor', () => {
  it.each<[string, RgbaPixels, string | null]>([
    ['a solid colour, exactly', row([0x33, 0x66, 0xcc, 255], [0x33, 0x66, 0xcc, 255]), '#3366cc'],
    ['the majority colour', row([255, 0, 0, 255], [0, 0, 255, 255], [255, 0, 0, 255]), '#ff0000'],
    [
      'the mean of the fullest bin, not its centre',
      row([200, 10, 10, 255], [210, 20, 20, 255], [0, 0, 255, 255]),
      '#cd0f0f',
    ],
    [
      'transparent pixels do not count, however many',
      row([0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [10, 200, 10, 255]),
      '#0ac80a',
    ],
    ['pixels weigh by their alpha', row([255, 0, 0, 40], [255, 0, 0, 40], [0, 0, 255, 200]), '#0000ff'],
    ['nothing visible', row([12, 34, 56, 0]), null],
    ['a tie goes to the lower bin', row([0, 0, 255, 255], [255, 0, 0, 255]), '#0000ff'],
  ])('%s', (_, pixels, expected) => {
    expect(dominantColor(pixels)).toBe(expected);
  });
});

describe('hasTransparency', () => {
  it('is true only when some pixel is not fully opaque', () => {
    expect(hasTransparency(row([1, 2, 3, 255], [4, 5, 6, 255]))).toBe(false);
    expect(hasTransparency(row([1, 2, 3, 255], [4, 5, 6, 254]))).toBe(true);
  });
});
