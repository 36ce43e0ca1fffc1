import { describe, expect, it } from 'vitest';
import { flipBits, randomHash, rng } from '../../test/helpers/hashes.js';
import { hammingDistance } from '../domain/phash.js';
import { BAND_COUNT, bandRadius, hashBands, valuesWithin } from './hash-bands.js';

function popcount16(n: number): number {
  let count = 0;
  for (let v = n; v !== 0; v &= v - 1) count++;
  return count;
}

describe('hashBands', () => {
  it.each([
    ['0000000000000000', [0, 0, 0, 0]],
    ['ffffffffffffffff', [65535, 65535, 65535, 65535]],
    ['0001000200030004', [1, 2, 3, 4]],
    ['8000000000000001', [32768, 0, 0, 1]],
    ['abcd1234ef567890', [0xabcd, 0x1234, 0xef56, 0x7890]],
  ])('%s -> %j', (hash, bands) => {
    expect(hashBands(hash)).toEqual(bands);
  });
});

describe('bandRadius', () => {
  it.each([
    [0, 0],
    [3, 0],
    [4, 1],
    [6, 1],
    [10, 2],
    [11, 2],
    [12, 3],
  ])('maxDistance %i -> radius %i', (maxDistance, radius) => {
    expect(bandRadius(maxDistance)).toBe(radius);
  });
});

describe('valuesWithin', () => {
  it.each([
    [0, 1],
    [1, 17],
    [2, 137],
    [3, 697],
  ])('radius %i gives %i distinct values, the value itself first, all within the radius', (radius, count) => {
    const value = 0b1010_0110_0101_1100;
    const values = valuesWithin(value, radius);
    expect(values).toHaveLength(count);
    expect(new Set(values).size).toBe(count);
    expect(values[0]).toBe(value);
    for (const v of values) {
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThanOrEqual(0xffff);
      expect(popcount16(v ^ value)).toBeLessThanOrEqual(radius);
    }
  });

  it('contains every 16-bit value within radius 2 (checked against all 65536)', () => {
    const value = 0xf00d;
    const expected = [];
    for (let v = 0; v <= 0xffff; v++) if (popcount16(v ^ value) <= 2) expected.push(v);
    expect([...valuesWithin(value, 2)].sort((a, b) => a - b)).toEqual(expected);
  });
});

describe('the pigeonhole rule the index relies on', () => {
  it('a hash within maxDistance always has a band within bandRadius(maxDistance) of the query', () => {
    const next = rng(7);
    for (let maxDistance = 0; maxDistance <= 12; maxDistance++) {
      for (let trial = 0; trial < 200; trial++) {
        const query = randomHash(next);
        const bits = new Set<number>();
        while (bits.size < maxDistance) bits.add(next() % 64);
        const near = flipBits(query, [...bits]);
        expect(hammingDistance(query, near)).toBe(maxDistance);
        const a = hashBands(query);
        const b = hashBands(near);
        const radius = bandRadius(maxDistance);
        const matchingBands = a.filter((band, i) => valuesWithin(band, radius).includes(b[i] ?? -1));
        expect(matchingBands.length).toBeGreaterThanOrEqual(1);
      }
    }
    expect(BAND_COUNT).toBe(4);
  });

  it('the worst case: the flips spread evenly over all four bands still leave one band within radius', () => {
    const query = '0123456789abcdef';
    // 10 flips as 3 + 3 + 2 + 2: bands 2 and 3 differ in exactly 2 = bandRadius(10) bits.
    const near = flipBits(query, [0, 1, 2, 16, 17, 18, 32, 33, 48, 49]);
    const [a, b] = [hashBands(query), hashBands(near)];
    const within = a.map((band, i) => valuesWithin(band, bandRadius(10)).includes(b[i] ?? -1));
    expect(within).toEqual([false, false, true, true]);
  });
});
