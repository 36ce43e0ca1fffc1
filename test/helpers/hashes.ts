// Random 64-bit perceptual hashes for index tests and benchmarks, reproducible from a seed.

/** A deterministic pseudo-random generator of 32-bit values (xorshift), so failures reproduce. */
export function rng(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return state >>> 0;
  };
}

/** 16 hex digits from two 32-bit draws. */
export function randomHash(next: () => number): string {
  return [next(), next()].map((n) => n.toString(16).padStart(8, '0')).join('');
}

/** `hash` with the given bit positions (0 = most significant) flipped. */
export function flipBits(hash: string, bits: Iterable<number>): string {
  let value = BigInt(`0x${hash}`);
  for (const bit of bits) value ^= 1n << BigInt(63 - bit);
  return value.toString(16).padStart(16, '0');
}
