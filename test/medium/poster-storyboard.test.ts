import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planStoryboard, type StoryboardOptions, tilePosition } from '../../src/domain/storyboard.js';
import { run } from '../../src/media/ffmpeg.js';
import { renderPoster } from '../../src/media/poster.js';
import { renderStoryboard } from '../../src/media/storyboard-render.js';
import { probeVideo } from '../../src/media/video-probe.js';
import { tempDir } from '../helpers/tmp.js';

// Real ffmpeg 5.1 and sharp on tiny clips generated here (320x180 or smaller, at most 6 s): the
// poster must skip a black intro, and the storyboard's sheets, tiles and VTT must match the plan.

const RUN = { timeoutMs: 60_000 };

let dir: string;
let cleanup: () => Promise<void>;
const clip: Record<string, string> = {};

async function ffmpeg(...args: string[]): Promise<void> {
  await run('ffmpeg', ['-hide_banner', '-v', 'error', '-y', ...args], RUN);
}

// Keyframes every `gop` frames and nowhere else, so the keyframe spacing is what the test says.
const x264 = (gop: number) => [
  '-c:v',
  'libx264',
  '-preset',
  'veryfast',
  '-pix_fmt',
  'yuv420p',
  '-g',
  String(gop),
  '-sc_threshold',
  '0',
];
const lavfi = (graph: string) => ['-f', 'lavfi', '-i', graph];

/**
 * A grey clip whose luma counts the frames (frame n has Y = 16 + n), 25 fps: a tile's brightness
 * says which frame it shows. CRF 1 keeps the levels exact enough after decoding.
 */
const ramp = (seconds: number) =>
  lavfi(`color=gray:size=160x90:rate=25:duration=${seconds},format=yuv420p,geq=lum='N+16':cb=128:cr=128`);

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('assetpipe-poster-storyboard-'));
  const make = async (name: string, ...args: string[]) => {
    clip[name] = join(dir, name);
    await ffmpeg(...args, clip[name]);
  };
  // 4 s of black, then 2 s of testsrc2: black is the typical frame here, so ffmpeg's `thumbnail`
  // alone picks it (checked: with the dark/flat filter removed, the first test below fails).
  await make(
    'intro.mp4',
    ...lavfi('color=black:size=320x180:rate=25:duration=4'),
    ...lavfi('testsrc2=size=320x180:rate=25:duration=2'),
    '-filter_complex',
    '[0:v][1:v]concat=n=2:v=1:a=0',
    ...x264(25),
  );
  await make('one-frame.mp4', ...lavfi('testsrc2=size=320x180:rate=25'), '-frames:v', '1', ...x264(25));
  await make('black.mp4', ...lavfi('color=black:size=320x180:rate=25:duration=3'), ...x264(25));
  await make('ramp-gop25.mp4', ...ramp(6), ...x264(25), '-crf', '1');
  await make('ramp-gop20.mp4', ...ramp(6), ...x264(20), '-crf', '1');
  await make('ramp-gop100.mp4', ...ramp(6), ...x264(100), '-crf', '1');
  // Left half white, right half black: which way it ends up shows whether the frame was turned.
  const halves = lavfi(
    "color=gray:size=320x180:rate=25:duration=2,format=yuv420p,geq=lum='if(lt(X,W/2),235,16)':cb=128:cr=128",
  );
  await make('transposed.mp4', ...halves, '-vf', 'transpose=clock', ...x264(25));
  // A phone's portrait video: landscape frames plus a rotation, which ffmpeg 5.1 only writes when
  // stream-copying (see test/medium/video-probe.test.ts).
  const landscape = join(dir, 'landscape.mp4');
  await ffmpeg(...halves, ...x264(25), landscape);
  await make('rotated.mp4', '-i', landscape, '-c', 'copy', '-metadata:s:v:0', 'rotate=90');
});

/**
 * Portrait sources made from a frame whose left half is white. `transpose=clock` turns the pixels
 * themselves clockwise (left -> top). The stream-copied `rotate=90` tag becomes a display matrix
 * ffprobe 5.1 reports as rotation 90, counter-clockwise (left -> bottom) — what ffmpeg's autorotate
 * and players apply. A frame squashed to portrait without turning would keep its halves left/right.
 */
const PORTRAIT = [
  ['transposed.mp4', 'top'],
  ['rotated.mp4', 'bottom'],
] as const;

afterAll(async () => {
  await cleanup?.();
});

async function displayed(path: string) {
  const probe = await probeVideo(path, RUN);
  if (!probe.video || probe.durationSec === null) throw new Error(`no video in ${path}`);
  return {
    durationSec: probe.durationSec,
    width: probe.video.displayWidth,
    height: probe.video.displayHeight,
  };
}

/** Mean grey level of an encoded image, or of a region of it. */
async function meanLevel(
  image: Buffer,
  region?: { left: number; top: number; width: number; height: number },
): Promise<number> {
  // stats() reads its input, not the pipeline's result: cut the region out first.
  const pixels = region ? await sharp(image).extract(region).png().toBuffer() : image;
  const stats = await sharp(pixels).greyscale().stats();
  return stats.channels[0]?.mean ?? Number.NaN;
}

const poster = (name: string, durationSec: number) =>
  renderPoster(clip[name] ?? '', { ...RUN, durationSec, scratchDir: dir });

describe('renderPoster', () => {
  it('skips a black intro: a lit frame from after it, as JPEG and WebP at the video size', async () => {
    const result = await poster('intro.mp4', 6);
    expect(result.allDark).toBe(false);
    expect(result.timeSec).toBeGreaterThanOrEqual(4);
    expect(result.timeSec).toBeLessThan(6);
    expect({ width: result.width, height: result.height }).toEqual({ width: 320, height: 180 });
    for (const [image, format] of [
      [result.jpeg, 'jpeg'],
      [result.webp, 'webp'],
    ] as const) {
      const meta = await sharp(image).metadata();
      expect({ format: meta.format, width: meta.width, height: meta.height }).toEqual({
        format,
        width: 320,
        height: 180,
      });
      // Black is 0 here (limited-range 16 converted to RGB); testsrc2 averages around 100.
      expect(await meanLevel(image)).toBeGreaterThan(50);
    }
    // 4 x 3 components: 1 + 1 + 4 + 2 x 11 characters.
    expect(result.blurhash).toMatch(/^[0-9A-Za-z#$%*+,\-.:;=?@[\]^_{|}~]{28}$/);
  });

  it('a one-frame video gives that frame', async () => {
    const result = await poster('one-frame.mp4', 0.04);
    expect(result.allDark).toBe(false);
    expect(result.timeSec).toBe(0);
    const meta = await sharp(result.jpeg).metadata();
    expect([meta.width, meta.height]).toEqual([320, 180]);
    expect(await meanLevel(result.jpeg)).toBeGreaterThan(50);
  });

  it('an all-black video still gives a frame, flagged allDark', async () => {
    const result = await poster('black.mp4', 3);
    expect(result.allDark).toBe(true);
    const meta = await sharp(result.webp).metadata();
    expect([meta.width, meta.height]).toEqual([320, 180]);
    expect(await meanLevel(result.jpeg)).toBeLessThan(10);
    expect(result.blurhash.length).toBe(28);
  });

  it.each(PORTRAIT)(
    '%s: portrait poster, turned as displayed (white half at the %s)',
    async (name, white) => {
      const result = await poster(name, 2);
      expect([result.width, result.height]).toEqual([180, 320]);
      const top = await meanLevel(result.jpeg, { left: 0, top: 0, width: 180, height: 160 });
      const bottom = await meanLevel(result.jpeg, { left: 0, top: 160, width: 180, height: 160 });
      expect(white === 'top' ? [top, bottom] : [bottom, top]).toEqual([
        expect.toSatisfy((v: number) => v > 200),
        expect.toSatisfy((v: number) => v < 30),
      ]);
    },
  );
});

/** Sheet pixels of tile `i`, decoded from its JPEG. */
async function tile(
  sheets: { jpeg: Buffer }[],
  plan: ReturnType<typeof planStoryboard>,
  i: number,
): Promise<Buffer> {
  const { sheet, x, y, w, h } = tilePosition(plan, i);
  const jpeg = sheets[sheet]?.jpeg;
  if (!jpeg) throw new Error(`no sheet ${sheet}`);
  return sharp(jpeg).extract({ left: x, top: y, width: w, height: h }).raw().toBuffer();
}

interface Cue {
  start: number;
  end: number;
  url: string;
  x: number;
  y: number;
  w: number;
  h: number;
}

function parseVtt(vtt: string): Cue[] {
  const seconds = (t: string) => {
    const [h, m, s] = t.split(':').map(Number);
    return (h ?? 0) * 3600 + (m ?? 0) * 60 + (s ?? 0);
  };
  const cues: Cue[] = [];
  const re = /^(\d\d:\d\d:\d\d\.\d{3}) --> (\d\d:\d\d:\d\d\.\d{3})\n(\S+)#xywh=(\d+),(\d+),(\d+),(\d+)$/gm;
  for (const m of vtt.matchAll(re)) {
    cues.push({
      start: seconds(m[1] ?? ''),
      end: seconds(m[2] ?? ''),
      url: m[3] ?? '',
      x: Number(m[4]),
      y: Number(m[5]),
      w: Number(m[6]),
      h: Number(m[7]),
    });
  }
  return cues;
}

const GRID: StoryboardOptions = {
  maxTiles: 200,
  minIntervalSec: 1,
  maxIntervalSec: 60,
  tileWidth: 160,
  columns: 4,
  rows: 3,
};

describe('renderStoryboard', () => {
  it('sheets at exactly the planned sizes, tiles that advance, a VTT inside the sheets covering the video', async () => {
    const source = await displayed(clip['intro.mp4'] ?? '');
    // 6 tiles on 4 x 3 sheets of 2 tiles each: 2 sheets, the second one partly filled (one row used,
    // two of four columns), so ffmpeg's padded output must be cropped.
    const plan = planStoryboard(source, { ...GRID, columns: 4, rows: 1 });
    expect(plan.tileCount).toBe(6);
    const result = await renderStoryboard(clip['intro.mp4'] ?? '', plan, {
      ...RUN,
      scratchDir: dir,
      sheetUrl: (i) => `sheet-${i}.jpg`,
    });
    expect(result.decode).toBe('keyframes');
    expect(result.sheets).toHaveLength(2);
    for (const [i, sheet] of result.sheets.entries()) {
      const meta = await sharp(sheet.jpeg).metadata();
      expect({ format: meta.format, width: meta.width, height: meta.height }).toEqual({
        format: 'jpeg',
        width: plan.sheets[i]?.width,
        height: plan.sheets[i]?.height,
      });
    }
    expect([plan.sheets[0]?.width, plan.sheets[0]?.height]).toEqual([640, 90]);
    expect([plan.sheets[1]?.width, plan.sheets[1]?.height]).toEqual([320, 90]);

    // Time advances: four black tiles for the intro, then testsrc2 frames that differ from one
    // second to the next (by far more than JPEG noise).
    const tiles = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => tile(result.sheets, plan, i)));
    const levels = tiles.map((t) => t.reduce((sum, v) => sum + v, 0) / t.length);
    expect(
      levels.slice(0, 4).every((level) => level < 10),
      `tile levels ${levels}`,
    ).toBe(true);
    expect(
      levels.slice(4).every((level) => level > 50),
      `tile levels ${levels}`,
    ).toBe(true);
    expect(meanAbsDiff(tiles[4], tiles[5])).toBeGreaterThan(10);

    const cues = parseVtt(result.vtt);
    expect(cues).toHaveLength(plan.tileCount);
    expect(cues[0]?.start).toBe(0);
    expect(cues.at(-1)?.end).toBeCloseTo(source.durationSec, 3);
    for (const [i, cue] of cues.entries()) {
      if (i > 0) expect(cue.start).toBe(cues[i - 1]?.end);
      expect(cue.end).toBeGreaterThan(cue.start);
      const index = Number(/^sheet-(\d+)\.jpg$/.exec(cue.url)?.[1]);
      const sheet = result.sheets[index];
      expect(sheet, cue.url).toBeDefined();
      expect(cue.x + cue.w).toBeLessThanOrEqual(sheet?.width ?? 0);
      expect(cue.y + cue.h).toBeLessThanOrEqual(sheet?.height ?? 0);
      expect(Math.min(cue.x, cue.y)).toBeGreaterThanOrEqual(0);
    }
  });

  // Keyframes every second (= the interval) allow keyframe-only decoding; every 0.8 s too, with
  // keyframes off the cue starts; every 4 s do not (five tiles would repeat), so all frames are decoded.
  it.each([
    ['ramp-gop25.mp4', 'keyframes'],
    ['ramp-gop20.mp4', 'keyframes'],
    ['ramp-gop100.mp4', 'all'],
  ] as const)('%s: decodes %s, and tile k shows a frame from inside cue k', async (name, decode) => {
    const source = await displayed(clip[name] ?? '');
    const plan = planStoryboard(source, GRID);
    expect(plan.intervalSec).toBe(1);
    expect(plan.tileCount).toBe(6);
    // 6 tiles on a 4 x 3 grid: one sheet, two rows used of three.
    expect(plan.sheets).toEqual([{ index: 0, tiles: 6, width: 640, height: 2 * plan.tileHeight }]);
    const result = await renderStoryboard(clip[name] ?? '', plan, { ...RUN, scratchDir: dir });
    expect(result.decode).toBe(decode);
    const meta = await sharp(result.sheets[0]?.jpeg).metadata();
    expect([meta.width, meta.height]).toEqual([640, 2 * plan.tileHeight]);
    const frames: number[] = [];
    for (let i = 0; i < plan.tileCount; i++) {
      const png = await sharp(await tile(result.sheets, plan, i), { raw: rawTile(plan) })
        .png()
        .toBuffer();
      // Y = 16 + n in limited range; full-range RGB grey = (Y - 16) x 255 / 219.
      frames.push(Math.round(((await meanLevel(png)) * 219) / 255));
    }
    for (const [k, frame] of frames.entries()) {
      // Cue k is [k s, k+1 s) = frames [25k, 25k + 25); 1 frame of slack for JPEG and scaling.
      expect(frame, `tile ${k} shows frame ${frame}`).toBeGreaterThanOrEqual(25 * k - 1);
      expect(frame, `tile ${k} shows frame ${frame}`).toBeLessThan(25 * k + 25);
    }
  });

  it.each(PORTRAIT)('%s: portrait tiles, turned as displayed (white half at the %s)', async (name, white) => {
    const source = await displayed(clip[name] ?? '');
    expect([source.width, source.height]).toEqual([180, 320]);
    const plan = planStoryboard(source, { ...GRID, tileWidth: 90 });
    expect([plan.tileWidth, plan.tileHeight]).toEqual([90, 160]);
    const result = await renderStoryboard(clip[name] ?? '', plan, { ...RUN, scratchDir: dir });
    const meta = await sharp(result.sheets[0]?.jpeg).metadata();
    expect([meta.width, meta.height]).toEqual([plan.sheets[0]?.width, plan.sheets[0]?.height]);
    const png = await sharp(await tile(result.sheets, plan, 0), { raw: rawTile(plan) })
      .png()
      .toBuffer();
    const top = await meanLevel(png, { left: 0, top: 0, width: 90, height: 80 });
    const bottom = await meanLevel(png, { left: 0, top: 80, width: 90, height: 80 });
    expect(white === 'top' ? [top, bottom] : [bottom, top]).toEqual([
      expect.toSatisfy((v: number) => v > 200),
      expect.toSatisfy((v: number) => v < 30),
    ]);
  });
});

function meanAbsDiff(a: Buffer | undefined, b: Buffer | undefined): number {
  if (!a || !b || a.length !== b.length) throw new Error('tiles of different sizes');
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs((a[i] ?? 0) - (b[i] ?? 0));
  return sum / a.length;
}

function rawTile(plan: ReturnType<typeof planStoryboard>) {
  return { width: plan.tileWidth, height: plan.tileHeight, channels: 3 as const };
}
