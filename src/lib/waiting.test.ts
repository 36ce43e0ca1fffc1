import { describe, expect, it } from 'vitest';
import { withTimeout } from './waiting.js';

describe('withTimeout', () => {
  const late = (ms: number, outcome: 'resolve' | 'reject') =>
    new Promise<string>((resolve, reject) =>
      setTimeout(() => (outcome === 'resolve' ? resolve('value') : reject(new Error('late failure'))), ms),
    );

  it('gives the answer that comes in time, and its own failure', async () => {
    await expect(withTimeout(late(5, 'resolve'), 1000, () => new Error('too slow'))).resolves.toBe('value');
    await expect(withTimeout(late(5, 'reject'), 1000, () => new Error('too slow'))).rejects.toThrow(
      'late failure',
    );
  });

  it('fails with the timeout error when the answer is late, and swallows a late rejection', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      await expect(withTimeout(late(100, 'reject'), 10, () => new Error('too slow'))).rejects.toThrow(
        'too slow',
      );
      await new Promise((resolve) => setTimeout(resolve, 150));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
