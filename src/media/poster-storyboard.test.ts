import { describe, expect, it } from 'vitest';
import { planStoryboard } from '../domain/storyboard.js';
import {
  choosePosterFrame,
  type LumaSample,
  MAX_WINDOW_SEC,
  parseLumaSamples,
  posterPickArgs,
  posterScanRange,
} from './poster.js';
import { chooseStoryboardDecode, maxKeyframeGapSec, storyboardArgs } from './storyboard-render.js';

// Pure pieces of the poster and storyboard: the choices and the ffmpeg arguments, no ffmpeg run.
// test/medium/poster-storyboard.test.ts runs them against real clips.

const dark = (timeSec: number): LumaSample => ({ timeSec, yavg: 16, ylow: 16, yhigh: 16 });
const lit = (timeSec: number, yavg = 110): LumaSample => ({ timeSec, yavg, ylow: 40, yhigh: 200 });
/** Bright but uniform: a white card. */
const blank = (timeSec: number): LumaSample => ({ timeSec, yavg: 230, ylow: 228, yhigh: 232 });

describe('posterScanRange', () => {
  it.each([
    // duration, scanned, step
    [0.04, 0.04, 0.25],
    [6, 6, 0.25],
    [20, 10, 0.25],
    [100, 30, 0.25],
    [7200, 60, 0.5],
  ])('%s s -> scan %s s every %s s', (durationSec, scanSec, stepSec) => {
    expect(posterScanRange(durationSec)).toEqual({ scanSec, stepSec });
  });
});

describe('parseLumaSamples', () => {
  it('reads time, YAVG, YLOW and YHIGH per frame and drops frames missing one', () => {
    const stdout = [
      'frame:0    pts:0       pts_time:0',
      'lavfi.signalstats.YMIN=16',
      'lavfi.signalstats.YLOW=16',
      'lavfi.signalstats.YAVG=16.0278',
      'lavfi.signalstats.YHIGH=17',
      'frame:1    pts:7       pts_time:0.28',
      'lavfi.signalstats.YAVG=99',
      'frame:2    pts:14      pts_time:0.56',
      'lavfi.signalstats.YLOW=30',
      'lavfi.signalstats.YAVG=121.687',
      'lavfi.signalstats.YHIGH=210',
      '',
    ].join('\n');
    expect(parseLumaSamples(stdout)).toEqual([
      { timeSec: 0, yavg: 16.0278, ylow: 16, yhigh: 17 },
      { timeSec: 0.56, yavg: 121.687, ylow: 30, yhigh: 210 },
    ]);
  });

  it('nothing printed -> no samples', () => {
    expect(parseLumaSamples('')).toEqual([]);
  });
});

describe('choosePosterFrame', () => {
  const step = 0.5;
  const times = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i * step);

  it.each<[string, LumaSample[], ReturnType<typeof choosePosterFrame>]>([
    ['all lit: the whole run', times(4).map((t) => lit(t)), { kind: 'window', startSec: 0, durationSec: 2 }],
    [
      'a black intro is skipped',
      [...times(4).map(dark), ...times(4, 2).map((t) => lit(t))],
      { kind: 'window', startSec: 2, durationSec: 2 },
    ],
    [
      'a blank card is skipped like black',
      [...times(2).map(blank), ...times(2, 1).map((t) => lit(t))],
      { kind: 'window', startSec: 1, durationSec: 1 },
    ],
    [
      'the longest run wins over an earlier short one',
      [lit(0), dark(0.5), ...times(3, 1).map((t) => lit(t)), dark(2.5)],
      { kind: 'window', startSec: 1, durationSec: 1.5 },
    ],
    [
      'equal runs: the earliest',
      [lit(0), lit(0.5), dark(1), lit(1.5), lit(2)],
      { kind: 'window', startSec: 0, durationSec: 1 },
    ],
    [
      'a long run is cut to its middle',
      times(41).map((t) => lit(t)),
      { kind: 'window', startSec: (20.5 - MAX_WINDOW_SEC) / 2, durationSec: MAX_WINDOW_SEC },
    ],
    ['one lit frame', [lit(0)], { kind: 'window', startSec: 0, durationSec: 0.5 }],
    [
      'nothing lit: the brightest, earliest on a tie',
      [
        dark(0),
        { timeSec: 0.5, yavg: 30, ylow: 16, yhigh: 40 },
        { timeSec: 1, yavg: 30, ylow: 16, yhigh: 40 },
      ],
      { kind: 'brightest', timeSec: 0.5 },
    ],
    ['no samples at all: the first frame', [], { kind: 'brightest', timeSec: 0 }],
  ])('%s', (_, samples, expected) => {
    expect(choosePosterFrame(samples, step)).toEqual(expected);
  });
});

describe('posterPickArgs', () => {
  it('a window: seeks to it, decimates, lets thumbnail pick, writes one PNG', () => {
    const args = posterPickArgs(
      '/in/-odd name.mp4',
      { kind: 'window', startSec: 2, durationSec: 3 },
      {
        stepSec: 0.25,
        output: '/tmp/p.png',
      },
    );
    expect(args.slice(args.indexOf('-ss'), args.indexOf('-i') + 2)).toEqual([
      '-ss',
      '2',
      '-t',
      '3',
      '-i',
      'file:/in/-odd name.mp4',
    ]);
    const graph = args[args.indexOf('-vf') + 1] ?? '';
    expect(graph).toMatch(
      /^select='isnan\(prev_selected_t\)\+gte\(t-prev_selected_t,0.25\)',thumbnail=n=13,/,
    );
    expect(args.slice(-8)).toEqual(['-frames:v', '1', '-f', 'image2', '-c:v', 'png', '-y', '/tmp/p.png']);
  });

  it('the brightest frame: seeks to it, no thumbnail', () => {
    const args = posterPickArgs(
      '/in/a.mp4',
      { kind: 'brightest', timeSec: 1.5 },
      { stepSec: 0.25, output: 'o.png' },
    );
    expect(args[args.indexOf('-ss') + 1]).toBe('1.5');
    expect(args).not.toContain('-t');
    expect(args[args.indexOf('-vf') + 1]).not.toContain('thumbnail');
  });
});

describe('maxKeyframeGapSec', () => {
  it('largest gap between keyframes, in presentation order (B-frames come out of order)', () => {
    const csv = [
      '0.000000,K_',
      '0.160000,__',
      '0.080000,__',
      '1.000000,K_',
      '3.000000,K_',
      '3.120000,__',
    ].join('\n');
    expect(maxKeyframeGapSec(csv)).toBe(2);
  });

  it('counts the stretch after the last keyframe and before the first', () => {
    expect(maxKeyframeGapSec(['0.000000,K_', '0.500000,K_', '4.000000,__'].join('\n'))).toBe(3.5);
    expect(maxKeyframeGapSec(['0.000000,__', '1.500000,K_', '2.000000,K_'].join('\n'))).toBe(1.5);
  });

  it('skips packets without a time; null without any keyframe', () => {
    expect(maxKeyframeGapSec(['N/A,K_', '0.000000,K_', '0.800000,K_'].join('\n'))).toBe(0.8);
    expect(maxKeyframeGapSec(['0.000000,__', '0.040000,__'].join('\n'))).toBeNull();
    expect(maxKeyframeGapSec('')).toBeNull();
  });
});

describe('chooseStoryboardDecode', () => {
  it.each([
    [1, 1, 'keyframes'],
    [1, 0.8, 'keyframes'],
    [10, 6, 'keyframes'],
    [1, 1.0004, 'keyframes'],
    [1, 1.5, 'all'],
    [2, 6, 'all'],
    [1, null, 'all'],
  ] as const)('interval %s s, keyframes %s s apart -> %s', (interval, gap, decode) => {
    expect(chooseStoryboardDecode(interval, gap)).toBe(decode);
  });
});

describe('storyboardArgs', () => {
  const plan = planStoryboard(
    { durationSec: 125, width: 1920, height: 1080 },
    { maxTiles: 50, minIntervalSec: 1, maxIntervalSec: 60, tileWidth: 160, columns: 5, rows: 4 },
  );

  it('keyframes: -skip_frame before the input, one frame per interval rounded down, tiles, one PNG per sheet', () => {
    expect([plan.intervalSec, plan.tileCount, plan.sheets.length]).toEqual([3, 42, 3]);
    const args = storyboardArgs('/in/a.mp4', plan, { decode: 'keyframes', outputDir: '/tmp/sb' });
    expect(args.indexOf('-skip_frame')).toBeLessThan(args.indexOf('-i'));
    expect(args[args.indexOf('-skip_frame') + 1]).toBe('nokey');
    expect(args[args.indexOf('-vf') + 1]).toBe(
      "tpad=stop_mode=clone:stop_duration=3,fps=1/3:round=down,select='lt(n,42)',scale=160:90,setsar=1,tile=5x4",
    );
    expect(args[args.indexOf('-frames:v') + 1]).toBe('3');
    expect(args.at(-1)).toBe('/tmp/sb/sheet-%05d.png');
  });

  it('all frames: no -skip_frame, rounded up (the frame at the cue start)', () => {
    const args = storyboardArgs('/in/a.mp4', plan, { decode: 'all', outputDir: '/tmp/sb', streamIndex: 2 });
    expect(args).not.toContain('-skip_frame');
    expect(args[args.indexOf('-vf') + 1]).toContain('fps=1/3:round=up,');
    expect(args[args.indexOf('-map') + 1]).toBe('0:2');
  });
});
