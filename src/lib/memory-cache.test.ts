import { describe, expect, it } from 'vitest';
import { MemoryCache } from './memory-cache.js';

describe('MemoryCache', () => {
  it('evicts the least recently used entry beyond maxEntries', () => {
    const cache = new MemoryCache<number>({ maxEntries: 2 });
    cache.set('a', 1);
    cache.set('b', 2);
    expect(cache.get('a')).toBe(1); // a is now the most recent
    cache.set('c', 3);
    expect(cache.get('b')).toBeUndefined();
    expect([cache.get('a'), cache.get('c'), cache.size]).toEqual([1, 3, 2]);
  });

  it('keeps the total weight under maxWeight and refuses a value heavier than the whole cache', () => {
    const cache = new MemoryCache<Buffer>({ maxEntries: 100, maxWeight: 10, weigh: (b) => b.length });
    cache.set('a', Buffer.alloc(4));
    cache.set('b', Buffer.alloc(4));
    cache.set('c', Buffer.alloc(4)); // 12 > 10: a goes
    expect(cache.get('a')).toBeUndefined();
    expect(cache.get('b')?.length).toBe(4);
    cache.set('huge', Buffer.alloc(11));
    expect(cache.get('huge')).toBeUndefined();
    expect(cache.get('c')?.length).toBe(4);
  });

  it('forgets entries older than ttlMs, and by prefix', () => {
    let now = 0;
    const cache = new MemoryCache<string>({ maxEntries: 10, ttlMs: 100, now: () => now });
    cache.set('x/1', 'one');
    cache.set('y/1', 'two');
    now = 100;
    expect(cache.get('x/1')).toBe('one');
    now = 101;
    expect(cache.get('x/1')).toBeUndefined();
    cache.set('y/2', 'three');
    cache.deletePrefix('y/');
    expect([cache.get('y/1'), cache.get('y/2'), cache.size]).toEqual([undefined, undefined, 0]);
  });
});
