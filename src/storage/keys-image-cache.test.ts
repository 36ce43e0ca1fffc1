import { describe, expect, it } from 'vitest';
import { imageCacheKey, imageCachePrefix, keyProblem } from './keys.js';

describe('image cache keys', () => {
  it('put every transform of an asset under one prefix, per version, named by the options digest', () => {
    const digest = 'a'.repeat(64);
    const key = imageCacheKey('ast_01ABC', 2, digest, 'webp');
    expect(key).toBe(`cache/img/ast_01ABC/v2/${digest}.webp`);
    expect(key.startsWith(imageCachePrefix('ast_01ABC'))).toBe(true);
    expect(imageCacheKey('ast_01ABC', 3, digest, 'webp')).not.toBe(key);
    expect(keyProblem(key)).toBeUndefined();
    // One asset's prefix is never a prefix of another asset's keys.
    expect(imageCacheKey('ast_01ABCD', 2, digest, 'webp').startsWith(imageCachePrefix('ast_01ABC'))).toBe(
      false,
    );
  });
});
