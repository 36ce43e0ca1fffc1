import { describe, expect, it } from 'vitest';
import { backoffDelay } from './backoff.js';

const policy = { baseMs: 1000, maxMs: 60_000 };

describe('backoffDelay', () => {
  it('doubles per attempt between half and all of the nominal delay', () => {
    expect(backoffDelay(1, policy, () => 0)).toBe(500);
    expect(backoffDelay(1, policy, () => 1)).toBe(1000);
    expect(backoffDelay(2, policy, () => 0)).toBe(1000);
    expect(backoffDelay(3, policy, () => 1)).toBe(4000);
  });

  it('is capped by maxMs, even for absurd attempt numbers', () => {
    expect(backoffDelay(20, policy, () => 1)).toBe(60_000);
    expect(backoffDelay(10_000, policy, () => 0.5)).toBe(45_000);
  });

  it('spreads retries of jobs that failed together', () => {
    const delays = new Set(Array.from({ length: 50 }, () => backoffDelay(4, policy)));
    expect(delays.size).toBeGreaterThan(10);
    for (const d of delays) {
      expect(d).toBeGreaterThanOrEqual(4000);
      expect(d).toBeLessThanOrEqual(8000);
    }
  });
});
