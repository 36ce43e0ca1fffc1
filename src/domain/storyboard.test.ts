import { describe, expect, it } from 'vitest';
import { planStoryboard, storyboardVtt, vttTimestamp } from './storyboard.js';

/** Reads the cues back: [start s, end s, sheet, x, y, w, h]. */
function cues(vtt: string) {
  const out: [number, number, number, number, number, number, number][] = [];
  const seconds = (t: string) => {
    const [h, m, s] = t.split(':').map(Number);
    return (h ?? 0) * 3600 + (m ?? 0) * 60 + (s ?? 0);
  };
  const blocks = vtt.split('\n\n').slice(1).filter(Boolean);
  for (const block of blocks) {
    const [timing, target] = block.split('\n');
    const [start, end] = (timing ?? '').split(' --> ');
    const match = /^sheet-(\d+)\.jpg#xywh=(\d+),(\d+),(\d+),(\d+)$/.exec(target ?? '');
    if (!match || !start || !end) throw new Error(`bad cue: ${block}`);
    const [, sheet, x, y, w, h] = match.map(Number) as number[];
    out.push([seconds(start), seconds(end), sheet!, x!, y!, w!, h!]);
  }
  return out;
}

describe('planStoryboard + storyboardVtt', () => {
  it.each([
    [0.04, 1920, 1080, 1, 1],
    [10, 1920, 1080, 1, 10],
    [10.5, 1280, 720, 1, 11],
    [199, 1080, 1920, 1, 199],
    [600, 1920, 1080, 3, 200],
    [7200, 1920, 1080, 36, 200],
    [86_400, 640, 360, 60, 1440],
  ])('%s s of %sx%s: a tile every %s s, %s tiles', (durationSec, width, height, interval, count) => {
    const plan = planStoryboard({ durationSec, width, height });
    expect([plan.intervalSec, plan.tileCount]).toEqual([interval, count]);
    expect(plan.tileHeight % 2).toBe(0);
    expect(plan.sheets.reduce((n, s) => n + s.tiles, 0)).toBe(count);
  });

  it.each([
    [0.04, 1920, 1080],
    [10.5, 1280, 720],
    [250, 1080, 1920],
    [3601, 1920, 800],
  ])(
    '%s s: cues cover the whole duration without gaps and every #xywh lies inside its sheet',
    (durationSec, width, height) => {
      const plan = planStoryboard({ durationSec, width, height });
      const parsed = cues(storyboardVtt(plan, (i) => `sheet-${i}.jpg`));
      expect(parsed).toHaveLength(plan.tileCount);
      expect(parsed[0]?.[0]).toBe(0);
      expect(parsed.at(-1)?.[1]).toBeCloseTo(durationSec, 3);
      for (let i = 1; i < parsed.length; i++) expect(parsed[i]?.[0]).toBe(parsed[i - 1]?.[1]);
      for (const [start, end, sheet, x, y, w, h] of parsed) {
        expect(end).toBeGreaterThan(start);
        const size = plan.sheets[sheet];
        expect(size, `sheet ${sheet}`).toBeDefined();
        expect(x + w).toBeLessThanOrEqual(size?.width ?? 0);
        expect(y + h).toBeLessThanOrEqual(size?.height ?? 0);
      }
    },
  );

  it('refuses a zero duration or size', () => {
    expect(() => planStoryboard({ durationSec: 0, width: 10, height: 10 })).toThrow(/positive duration/);
    expect(() => planStoryboard({ durationSec: 5, width: 0, height: 10 })).toThrow(
      /positive duration and size/,
    );
  });

  it.each([
    [0, '00:00:00.000'],
    [61.5, '00:01:01.500'],
    [3723.0004, '01:02:03.000'],
  ])('writes %s s as %s', (s, text) => {
    expect(vttTimestamp(s)).toBe(text);
  });
});
