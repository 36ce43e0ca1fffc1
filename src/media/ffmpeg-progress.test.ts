import { describe, expect, it } from 'vitest';
import { ProgressParser, progressPercent } from './ffmpeg-progress.js';

const BLOCK = (outTimeUs: string, frame: number, speed: string, progress = 'continue') =>
  `frame=${frame}\nfps=59.94\nstream_0_0_q=28.0\nbitrate=1234.5kbits/s\ntotal_size=65536\nout_time_us=${outTimeUs}\nout_time_ms=${outTimeUs}\nout_time=00:00:01.000000\ndup_frames=0\ndrop_frames=0\nspeed=${speed}\nprogress=${progress}\n`;

describe('ProgressParser', () => {
  it('yields one snapshot per block, also when lines are split across chunks', () => {
    const parser = new ProgressParser();
    const text =
      BLOCK('1000000', 60, '2.5x') + BLOCK('2500000', 150, '2.41x') + BLOCK('4000000', 240, '2.4x', 'end');
    const snapshots = [];
    for (let i = 0; i < text.length; i += 7) snapshots.push(...parser.push(text.slice(i, i + 7)));
    expect(snapshots).toEqual([
      { outTimeSec: 1, frame: 60, fps: 59.94, speed: 2.5, end: false },
      { outTimeSec: 2.5, frame: 150, fps: 59.94, speed: 2.41, end: false },
      { outTimeSec: 4, frame: 240, fps: 59.94, speed: 2.4, end: true },
    ]);
  });

  it('reports no time before the first frame (N/A or negative) and ignores noise lines', () => {
    const parser = new ProgressParser();
    const [first, second] = parser.push(
      'garbage without equals\nout_time_us=N/A\nspeed=N/A\nprogress=continue\nout_time_us=-23000\nprogress=continue\n',
    );
    expect(first).toEqual({ outTimeSec: null, frame: null, fps: null, speed: null, end: false });
    expect(second?.outTimeSec).toBeNull();
  });
});

describe('progressPercent', () => {
  it.each([
    [{ outTimeSec: 0, frame: 0, fps: null, speed: null, end: false }, 10, 0],
    [{ outTimeSec: 2.55, frame: 0, fps: null, speed: null, end: false }, 10, 25],
    [{ outTimeSec: 10.2, frame: 0, fps: null, speed: null, end: false }, 10, 99],
    [{ outTimeSec: 3, frame: 0, fps: null, speed: null, end: true }, 10, 100],
    [{ outTimeSec: null, frame: 0, fps: null, speed: null, end: false }, 10, null],
    [{ outTimeSec: 3, frame: 0, fps: null, speed: null, end: false }, null, null],
  ])('%j of %s s -> %s %%', (snapshot, duration, percent) => {
    expect(progressPercent(snapshot, duration)).toBe(percent);
  });
});
