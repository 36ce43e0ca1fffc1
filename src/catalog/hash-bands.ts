/**
 * Multi-index hashing (Norouzi, Punjani & Fleet, "Fast Search in Hamming Space with Multi-Index
 * Hashing", CVPR 2012) for 64-bit perceptual hashes, as pure functions; the SQL lives in
 * queries/similar.ts.
 *
 * A hash is cut into BAND_COUNT bands of BAND_BITS bits, each stored in an indexed integer column.
 * If two hashes differ in at most `d` bits, the differences are spread over the bands, so at least
 * one band differs in at most floor(d / BAND_COUNT) bits (pigeonhole). A search therefore asks, for
 * each band, for the rows whose band value is within that small radius of the query's band value
 * (exact index look-ups), and checks the full distance of those candidates only.
 */

export const BAND_COUNT = 4;
export const BAND_BITS = 16;
const HEX_PER_BAND = BAND_BITS / 4;

export type Bands = [number, number, number, number];

/**
 * The four 16-bit bands of a perceptual hash (16 lowercase hex digits), most significant first:
 * `b0` is the first four hex digits. The caller checks the hash with `isPerceptualHash`.
 */
export function hashBands(hash: string): Bands {
  const band = (i: number): number =>
    Number.parseInt(hash.slice(i * HEX_PER_BAND, (i + 1) * HEX_PER_BAND), 16);
  return [band(0), band(1), band(2), band(3)];
}

/** The per-band radius that finds every hash within `maxDistance` (pigeonhole over the bands). */
export function bandRadius(maxDistance: number): number {
  return Math.floor(maxDistance / BAND_COUNT);
}

/**
 * Every BAND_BITS-bit value within Hamming distance `radius` of `value`, `value` itself first, each
 * once: sum of C(16, k) for k <= radius values (1, 17, 137, 697 for radius 0..3).
 */
export function valuesWithin(value: number, radius: number): number[] {
  const out: number[] = [];
  // Flip every set of up to `radius` distinct bits, choosing bit positions in increasing order so
  // that each set is produced once.
  const visit = (current: number, nextBit: number, flipsLeft: number): void => {
    out.push(current);
    if (flipsLeft === 0) return;
    for (let bit = nextBit; bit < BAND_BITS; bit++) visit(current ^ (1 << bit), bit + 1, flipsLeft - 1);
  };
  visit(value, 0, Math.max(0, Math.min(radius, BAND_BITS)));
  return out;
}
