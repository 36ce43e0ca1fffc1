import { describe, expect, it } from 'vitest';
import { concatList, planChunks } from './chunks.js';

describe('planChunks', () => {
  it.each<[number, number, number, [number, number][]]>([
    [30, 60, 6, [[0, 30]]],
    [90, 60, 6, [[0, 90]]],
    [
      120,
      60,
      6,
      [
        [0, 60],
        [60, 60],
      ],
    ],
    [
      125,
      60,
      6,
      [
        [0, 60],
        [60, 65],
      ],
    ],
    [
      180,
      60,
      6,
      [
        [0, 60],
        [60, 60],
        [120, 60],
      ],
    ],
    [
      200,
      60,
      6,
      [
        [0, 60],
        [60, 60],
        [120, 80],
      ],
    ],
    [
      181,
      64,
      6,
      [
        [0, 60],
        [60, 60],
        [120, 61],
      ],
    ],
    [
      20,
      4,
      6,
      [
        [0, 6],
        [6, 6],
        [12, 8],
      ],
    ],
  ])('%s s in %s s chunks of %s s segments', (duration, chunk, segment, expected) => {
    const chunks = planChunks(duration, chunk, segment);
    expect(chunks.map((c) => [c.startSec, c.durationSec])).toEqual(expected);
    expect(chunks.map((c) => c.index)).toEqual(expected.map((_, i) => i));
    // Every boundary is on a segment boundary (a forced keyframe), and the chunks cover the source.
    for (const c of chunks) expect(c.startSec % segment).toBe(0);
    expect(chunks.reduce((sum, c) => sum + c.durationSec, 0)).toBeCloseTo(duration, 9);
  });

  it('refuses non-positive inputs', () => {
    expect(() => planChunks(0, 60, 6)).toThrow(/positive durations/);
    expect(() => planChunks(10, 60, 0)).toThrow(/positive durations/);
  });
});

describe('concatList', () => {
  it('lists the files in order, quoted for ffconcat', () => {
    expect(concatList(['/tmp/a/chunk-0.mp4', "/tmp/it's/chunk-1.mp4"])).toBe(
      "ffconcat version 1.0\nfile '/tmp/a/chunk-0.mp4'\nfile '/tmp/it'\\''s/chunk-1.mp4'\n",
    );
  });
});
