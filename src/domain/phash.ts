/**
 * Perceptual hash (the classic DCT "pHash"), pure: no image decoding and no I/O here. The pipeline
 * decodes and reduces an image to `size` x `size` greyscale (sharp: autoOrient, greyscale, resize
 * with fit 'fill', raw) and hands the pixels to {@link perceptualHash}.
 *
 * Algorithm:
 * 1. Orthonormal 2-D DCT-II of the `size` x `size` image (separable; only the lowest 8 frequencies
 *    of each axis are computed, with a precomputed cosine table).
 * 2. Take the top-left 8x8 block F[v][u] (v = vertical frequency 0..7, u = horizontal 0..7).
 * 3. The threshold is the MEDIAN of the 63 AC coefficients (the block without the DC term F[0][0];
 *    63 is odd, so the median is the middle element, never an average). The median, unlike the
 *    mean, splits the bits about evenly and stays stable under re-encoding and resizing.
 * 4. Bit i (i = v * 8 + u, row-major) is 1 when F[v][u] > median, else 0. The DC position follows
 *    the same rule: its bit is F[0][0] > median (so it is 1 for any image that is not all black,
 *    as the DC term is the scaled mean brightness; it carries almost no information but keeps 64
 *    bits in a simple layout).
 * 5. The 64 bits are written as 16 lowercase hex digits, bit 0 (F[0][0]) being the most
 *    significant bit of the first digit and bit 63 (F[7][7]) the least significant of the last.
 *
 * Coefficients are rounded to 1e-6 before comparing, so that floating-point noise around exact
 * zeros (flat or perfectly symmetric images) cannot flip bits: a flat image always hashes the same.
 */

/** The hash is built from the lowest HASH_SIDE x HASH_SIDE DCT frequencies. */
const HASH_SIDE = 8;
const HEX_HASH = /^[0-9a-f]{16}$/;

const cosineTables = new Map<number, Float64Array>();

/** table[k * size + n] = c(k) * cos(pi * (n + 0.5) * k / size), orthonormal DCT-II basis, k < 8. */
function cosineTable(size: number): Float64Array {
  let table = cosineTables.get(size);
  if (table === undefined) {
    table = new Float64Array(HASH_SIDE * size);
    for (let k = 0; k < HASH_SIDE; k++) {
      const scale = k === 0 ? Math.sqrt(1 / size) : Math.sqrt(2 / size);
      for (let n = 0; n < size; n++) {
        table[k * size + n] = scale * Math.cos((Math.PI * (n + 0.5) * k) / size);
      }
    }
    cosineTables.set(size, table);
  }
  return table;
}

/**
 * The 64-bit DCT perceptual hash of a `size` x `size` greyscale image (row-major, one value per
 * pixel, 0..255), as 16 lowercase hex digits. See the module comment for the exact bit rule.
 */
export function perceptualHash(grey: Uint8Array | Uint8ClampedArray | Float64Array, size = 32): string {
  if (!Number.isInteger(size) || size < HASH_SIDE) {
    throw new RangeError(`perceptualHash: size must be an integer >= ${HASH_SIDE}, got ${size}`);
  }
  if (grey.length !== size * size) {
    throw new RangeError(
      `perceptualHash: expected ${size * size} pixels (${size}x${size}), got ${grey.length}`,
    );
  }
  const table = cosineTable(size);

  // Pass 1: DCT along each row, keeping horizontal frequencies u < 8. rows[y * 8 + u].
  const rows = new Float64Array(size * HASH_SIDE);
  for (let y = 0; y < size; y++) {
    const offset = y * size;
    for (let u = 0; u < HASH_SIDE; u++) {
      const basis = u * size;
      let sum = 0;
      for (let x = 0; x < size; x++) sum += (grey[offset + x] ?? 0) * (table[basis + x] ?? 0);
      rows[y * HASH_SIDE + u] = sum;
    }
  }

  // Pass 2: DCT down each of those 8 columns, keeping vertical frequencies v < 8. block[v * 8 + u].
  const block = new Float64Array(HASH_SIDE * HASH_SIDE);
  for (let v = 0; v < HASH_SIDE; v++) {
    const basis = v * size;
    for (let u = 0; u < HASH_SIDE; u++) {
      let sum = 0;
      for (let y = 0; y < size; y++) sum += (rows[y * HASH_SIDE + u] ?? 0) * (table[basis + y] ?? 0);
      block[v * HASH_SIDE + u] = Math.round(sum * 1e6) / 1e6;
    }
  }

  // Median of the 63 AC coefficients (index 0 is DC).
  const ac = Array.from(block.subarray(1)).sort((a, b) => a - b);
  const median = ac[(ac.length - 1) / 2] ?? 0;

  let hex = '';
  for (let nibble = 0; nibble < 16; nibble++) {
    let value = 0;
    for (let bit = 0; bit < 4; bit++) {
      value = (value << 1) | ((block[nibble * 4 + bit] ?? 0) > median ? 1 : 0);
    }
    hex += value.toString(16);
  }
  return hex;
}

/** True for a well-formed perceptual hash: exactly 16 lowercase hex digits. */
export function isPerceptualHash(value: string): boolean {
  return typeof value === 'string' && HEX_HASH.test(value);
}

function popcount32(n: number): number {
  let v = n >>> 0;
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
}

/** Number of differing bits (0..64) between two perceptual hashes; throws on malformed input. */
export function hammingDistance(a: string, b: string): number {
  if (!isPerceptualHash(a) || !isPerceptualHash(b)) {
    throw new TypeError('hammingDistance: both hashes must be 16 lowercase hex digits');
  }
  const high = Number.parseInt(a.slice(0, 8), 16) ^ Number.parseInt(b.slice(0, 8), 16);
  const low = Number.parseInt(a.slice(8), 16) ^ Number.parseInt(b.slice(8), 16);
  return popcount32(high) + popcount32(low);
}
