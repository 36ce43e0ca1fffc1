import { describe, expect, it } from 'vitest';
import { mapLimit } from './map-limit.js';

const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

describe('mapLimit', () => {
  it('visits every item once with at most `limit` calls in flight', async () => {
    let inFlight = 0;
    let peak = 0;
    const seen: number[] = [];
    await mapLimit([1, 2, 3, 4, 5, 6, 7], 3, async (item) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await tick();
      seen.push(item);
      inFlight--;
    });
    expect(seen.sort()).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(peak).toBe(3);
  });

  it('rejects with the first failure, starts nothing after it and waits for the calls in flight', async () => {
    const started: number[] = [];
    let settled = 0;
    const run = mapLimit([1, 2, 3, 4, 5, 6], 2, async (item) => {
      started.push(item);
      await tick();
      settled++;
      if (item === 2) throw new Error('item 2 failed');
    });
    await expect(run).rejects.toThrow('item 2 failed');
    expect(started).toEqual([1, 2, 3]);
    expect(settled).toBe(started.length);
  });

  it('does nothing for no items', async () => {
    let calls = 0;
    await mapLimit([], 4, async () => {
      calls++;
    });
    expect(calls).toBe(0);
  });
});
