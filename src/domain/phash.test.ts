import { describe, expect, it } from 'vitest';
import { hammingDistance, isPerceptualHash, perceptualHash } from './phash.js';

const N = 32;

function image(pixel: (x: number, y: number) => number, size = N): Uint8Array {
  const out = new Uint8Array(size * size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) out[y * size + x] = Math.max(0, Math.min(255, Math.round(pixel(x, y))));
  }
  return out;
}

function transpose(grey: Uint8Array, size = N): Uint8Array {
  return image((x, y) => grey[x * size + y] ?? 0, size);
}

/** Smooth, asymmetric content: two soft blobs, a diagonal wave and a tilt (values stay in 40..215). */
const scene = image((x, y) => {
  const blob1 = 70 * Math.exp(-((x - 8) ** 2 + (y - 20) ** 2) / 40);
  const blob2 = -50 * Math.exp(-((x - 24) ** 2 + (y - 9) ** 2) / 60);
  const wave = 25 * Math.sin((x + 2 * y) / 5);
  return 120 + blob1 + blob2 + wave + x * 0.8 - y * 0.5;
});

describe('perceptualHash', () => {
  it('returns 16 lowercase hex digits', () => {
    const hash = perceptualHash(scene);
    expect(hash).toMatch(/^[0-9a-f]{16}$/);
    expect(isPerceptualHash(hash)).toBe(true);
  });

  it('hashes flat images to stable values (only the DC bit can be set)', () => {
    expect(perceptualHash(new Uint8Array(N * N).fill(128))).toBe('8000000000000000');
    expect(perceptualHash(new Uint8Array(N * N).fill(3))).toBe('8000000000000000');
    expect(perceptualHash(new Float64Array(N * N).fill(200.5))).toBe('8000000000000000');
    expect(perceptualHash(new Uint8Array(N * N))).toBe('0000000000000000');
  });

  it('is deterministic and accepts all three input array types', () => {
    const float = Float64Array.from(scene);
    const clamped = Uint8ClampedArray.from(scene);
    expect(perceptualHash(scene)).toBe(perceptualHash(scene));
    expect(perceptualHash(float)).toBe(perceptualHash(scene));
    expect(perceptualHash(clamped)).toBe(perceptualHash(scene));
  });

  it('hashes a horizontal and a vertical gradient differently', () => {
    // Bright-to-dark ramps: their odd-frequency coefficients along one axis are positive.
    const horizontal = image((x) => 255 - (x * 255) / (N - 1));
    const vertical = image((_, y) => 255 - (y * 255) / (N - 1));
    const h = perceptualHash(horizontal);
    const v = perceptualHash(vertical);
    expect(h).not.toBe(v);
    // The set bits are the odd horizontal frequencies of row 0 vs the odd vertical ones of column 0.
    expect(h).toBe('d500000000000000');
    expect(v).toBe('8080008000800080');
    expect(hammingDistance(h, v)).toBe(8);
  });

  it('documents a degenerate case: dark-to-bright linear ramps hash like a flat image', () => {
    // 59 of the 63 AC coefficients are exactly 0 and the other 4 are negative, so the median is 0
    // and no AC bit exceeds it. Real photographs do not produce such exact ties.
    const horizontal = image((x) => (x * 255) / (N - 1));
    const vertical = image((_, y) => (y * 255) / (N - 1));
    expect(perceptualHash(horizontal)).toBe('8000000000000000');
    expect(perceptualHash(vertical)).toBe('8000000000000000');
  });

  it('stays within 2 bits when the brightness is shifted by +20 (clamped)', () => {
    const brighter = image((x, y) => (scene[y * N + x] ?? 0) + 20);
    expect(hammingDistance(perceptualHash(scene), perceptualHash(brighter))).toBeLessThanOrEqual(2);
    // Also where the shift clips: a brighter scene (max 237) whose shifted copy saturates a few pixels.
    // (Measured: with 18 of 1024 pixels saturated the distance grows to 4, so clipping does matter.)
    const bright = image((x, y) => (scene[y * N + x] ?? 0) + 40);
    const brightShifted = image((x, y) => (bright[y * N + x] ?? 0) + 20);
    expect(brightShifted.filter((value) => value === 255).length).toBeGreaterThan(0);
    expect(hammingDistance(perceptualHash(bright), perceptualHash(brightShifted))).toBeLessThanOrEqual(2);
  });

  it('hashes a transposed image differently', () => {
    const hash = perceptualHash(scene);
    const transposed = perceptualHash(transpose(scene));
    expect(transposed).not.toBe(hash);
    expect(hammingDistance(hash, transposed)).toBeGreaterThan(10);
  });

  it('supports other sizes', () => {
    const small = image((x, y) => 100 + 60 * Math.sin(x / 3) + 40 * Math.cos(y / 4), 16);
    expect(isPerceptualHash(perceptualHash(small, 16))).toBe(true);
  });

  it.each([
    [new Uint8Array(N * N - 1), 32],
    [new Uint8Array(64), 32],
    [new Uint8Array(49), 7],
    [new Uint8Array(N * N), 32.5],
  ])('throws on a pixel count that does not match the size (%#)', (grey, size) => {
    expect(() => perceptualHash(grey, size)).toThrow(RangeError);
  });
});

describe('hammingDistance', () => {
  it.each([
    ['0000000000000000', '0000000000000000', 0],
    ['ffffffffffffffff', 'ffffffffffffffff', 0],
    ['0000000000000000', 'ffffffffffffffff', 64],
    ['aaaaaaaaaaaaaaaa', '5555555555555555', 64],
    ['0000000000000000', '8000000000000000', 1],
    ['0000000000000000', '0000000000000001', 1],
    ['0000000000000000', '0000000100000000', 1],
    ['0000000000000000', '0000000080000000', 1],
    ['0123456789abcdef', '0123456789abcdef', 0],
    ['0000000000000000', 'f0000000000000f0', 8],
    ['ffffffff00000000', '00000000ffffffff', 64],
    ['0000000000000000', '0123456789abcdef', 32],
  ])('%s vs %s = %i', (a, b, expected) => {
    expect(hammingDistance(a, b)).toBe(expected);
    expect(hammingDistance(b, a)).toBe(expected);
  });

  it.each([
    '',
    '000000000000000',
    '00000000000000000',
    '000000000000000g',
    'ABCDEF0123456789',
    ' 000000000000000',
    '0x00000000000000',
  ])('throws on malformed input %j', (bad) => {
    expect(() => hammingDistance(bad, '0000000000000000')).toThrow(TypeError);
    expect(() => hammingDistance('0000000000000000', bad)).toThrow(TypeError);
  });
});

describe('isPerceptualHash', () => {
  it.each([
    ['0123456789abcdef', true],
    ['ffffffffffffffff', true],
    ['0123456789ABCDEF', false],
    ['0123456789abcde', false],
    ['0123456789abcdef0', false],
    ['0123456789abcdez', false],
    ['', false],
  ])('%j -> %s', (value, expected) => {
    expect(isPerceptualHash(value)).toBe(expected);
  });
});
