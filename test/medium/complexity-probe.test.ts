import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LADDER_SETTINGS, type LadderPlan, planLadder } from '../../src/domain/ladder.js';
import {
  COMPLEXITY_SAMPLES,
  complexityProbeArgs,
  complexitySampleWindows,
  framecrcTotals,
  measureComplexity,
} from '../../src/media/complexity-probe.js';
import { run } from '../../src/media/ffmpeg.js';
import type { VideoProbe } from '../../src/media/ffprobe-parse.js';
import { ladderEncodeArgs } from '../../src/media/ladder-encode.js';
import { ladderSourceFromProbe } from '../../src/media/ladder-source.js';
import { probeVideo } from '../../src/media/video-probe.js';
import { tempDir } from '../helpers/tmp.js';

// Real ffmpeg 5.1 on clips generated here, small enough for two shared cores: a slideshow (stills
// with shapes changing every 2 s) against a noisy high-motion clip at 854x480 (the smallest size
// the planner gives two rungs), a 320x180 clip half still and half noise for the sampling, and a
// 320x180 PQ clip for the tone map.

const RUN = { timeoutMs: 180_000 };

let dir: string;
let cleanup: () => Promise<void>;

async function ffmpeg(...args: string[]): Promise<void> {
  await run('ffmpeg', ['-hide_banner', '-v', 'error', '-nostdin', '-y', ...args], RUN);
}

// A quick, near-lossless mezzanine: the probe should see the generated picture, noise included.
const mezzanine = ['-c:v', 'libx264', '-preset', 'ultrafast', '-crf', '16', '-pix_fmt', 'yuv420p'];

/** Stills that change every 2 s: a testsrc2 frame (bars, text) and a box that jumps, on a flat page. */
function slideshowGraph(size: string, seconds: number): string {
  const [w, h] = size.split('x').map(Number) as [number, number];
  return [
    `color=c=0xf4f4f0:s=${size}:r=30:d=${seconds}[bg]`,
    `testsrc2=s=${evenHalf(w)}x${evenHalf(h)}:r=0.5:d=${seconds},fps=30[pic]`,
    `[bg][pic]overlay=${Math.round(w * 0.45)}:${Math.round(h * 0.4)},drawbox=x='20+mod(floor(t/2)*97\\,${Math.round(w / 3)})':y=20:w=${Math.round(w / 5)}:h=${Math.round(h / 5)}:color=0x30a050:t=fill,format=yuv420p[v]`,
  ].join(';');
}

function evenHalf(n: number): number {
  return Math.floor(n / 4) * 2;
}

function noisyGraph(size: string, seconds: number): string {
  return `testsrc2=s=${size}:r=30:d=${seconds},noise=alls=30:allf=t+u,format=yuv420p[v]`;
}

async function makeClip(name: string, graph: string): Promise<string> {
  const path = join(dir, name);
  await ffmpeg('-filter_complex', graph, '-map', '[v]', ...mezzanine, path);
  return path;
}

function totalCaps(plan: LadderPlan): number {
  return plan.rungs.reduce((sum, r) => sum + r.maxrateBps, 0);
}

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('assetpipe-complexity-'));
});

afterAll(async () => {
  await cleanup?.();
});

describe('complexitySampleWindows', () => {
  it('encodes a short source whole, and the first windows of one of unknown length', () => {
    expect(complexitySampleWindows(8, 6)).toEqual([{ startSec: 0, durationSec: null }]);
    expect(complexitySampleWindows(36, 6)).toEqual([{ startSec: 0, durationSec: null }]);
    expect(complexitySampleWindows(null, 6)).toEqual([{ startSec: 0, durationSec: 24 }]);
    expect(complexitySampleWindows(0, 6)).toEqual([{ startSec: 0, durationSec: 24 }]);
  });

  it('samples a long source in windows centred in equal parts of it', () => {
    expect(complexitySampleWindows(120, 6)).toEqual([
      { startSec: 12, durationSec: 6 },
      { startSec: 42, durationSec: 6 },
      { startSec: 72, durationSec: 6 },
      { startSec: 102, durationSec: 6 },
    ]);
  });

  it.each([37, 120, 7200, 86_400])('samples %d s for the same cost, inside the source', (duration) => {
    const windows = complexitySampleWindows(duration, 6);
    expect(windows).toHaveLength(COMPLEXITY_SAMPLES);
    expect(windows.reduce((s, w) => s + w.durationSec!, 0)).toBe(COMPLEXITY_SAMPLES * 6);
    for (const [i, w] of windows.entries()) {
      expect(w.startSec).toBeGreaterThanOrEqual(i === 0 ? 0 : windows[i - 1]!.startSec + 6);
      expect(w.startSec + w.durationSec!).toBeLessThanOrEqual(duration);
    }
  });

  it('refuses a window that is not a positive length', () => {
    expect(() => complexitySampleWindows(60, 0)).toThrow(/windowSec must be a positive number/);
  });
});

describe('framecrcTotals', () => {
  it('adds the size column of every packet line and skips the header', () => {
    const text = [
      '#software: Lavf59.27.100',
      '#tb 0: 1/30',
      '#media_type 0: video',
      '0,         -2,          0,        1,     1234, 0x0ba43a22',
      '0,         -1,          3,        1,       56, 0x11223344, F=0x0',
      '',
    ].join('\n');
    expect(framecrcTotals(text)).toEqual({ packets: 2, bytes: 1290 });
    expect(() => framecrcTotals('0, 0, 0, 1, N/A, 0x0')).toThrow(/unexpected framecrc line/);
  });
});

describe('measureComplexity: slideshow against high motion and noise', () => {
  let slideshow: { probe: VideoProbe; path: string };
  let noisy: { probe: VideoProbe; path: string };

  beforeAll(async () => {
    const [s, n] = await Promise.all([
      makeClip('slideshow.mp4', slideshowGraph('854x480', 8)),
      makeClip('noisy.mp4', noisyGraph('854x480', 4)),
    ]);
    slideshow = { path: s, probe: await probeVideo(s, RUN) };
    noisy = { path: n, probe: await probeVideo(n, RUN) };
  }, 180_000);

  it('measures the slideshow far cheaper, and both ladders follow', async () => {
    const still = await measureComplexity(slideshow.path, slideshow.probe, RUN);
    const moving = await measureComplexity(noisy.path, noisy.probe, RUN);

    // Short clips are encoded whole, frame for frame.
    expect(still).toMatchObject({ samples: 1, sampledSec: 8 });
    expect(moving).toMatchObject({ samples: 1, sampledSec: 4 });
    expect(still.complexityBpp).toBeLessThan(moving.complexityBpp / 3);
    // Where ladder.ts's rough guide puts such content (it is written for 720p; 480p needs a little
    // more per pixel): a slideshow well below a talking head, noise above a football match.
    expect(still.complexityBpp).toBeLessThan(0.02);
    expect(moving.complexityBpp).toBeGreaterThan(0.1);

    const plan = (probe: VideoProbe, complexityBpp: number | null) => {
      const source = ladderSourceFromProbe(probe);
      source.video!.complexityBpp = complexityBpp;
      return planLadder(source, DEFAULT_LADDER_SETTINGS);
    };
    const fixed = plan(slideshow.probe, null);
    const cheap = plan(slideshow.probe, still.complexityBpp);
    const dear = plan(noisy.probe, moving.complexityBpp);
    expect(fixed.rungs.map((r) => r.name)).toEqual(['480p', '360p']);
    expect(cheap.bitrateMode).toBe('automated');
    expect(totalCaps(cheap)).toBeLessThan(totalCaps(fixed));
    expect(totalCaps(cheap)).toBeLessThan(totalCaps(dear));
    expect(totalCaps(fixed)).toBeLessThan(totalCaps(dear));
  }, 180_000);
});

describe('measureComplexity: sampling a longer source', () => {
  it('encodes only the windows, spread over the whole source', async () => {
    // 6 s of slideshow, then 6 s of noise. With 1 s segments the windows are 1 s long and the
    // source (12 s) is more than 1.5x the 4 s they add up to, so it is sampled: centred at 1.5,
    // 4.5, 7.5 and 10.5 s, two in the still half and two in the noise.
    const path = await makeClip(
      'half-still.mp4',
      `${slideshowGraph('320x180', 6).replace('[v]', '[a]')};${noisyGraph('320x180', 6).replace('[v]', '[b]')};[a][b]concat=n=2:v=1:a=0[v]`,
    );
    const probe = await probeVideo(path, RUN);
    expect(probe.durationSec).toBeCloseTo(12, 1);
    const sampled = await measureComplexity(path, probe, { ...RUN, segmentDurationSec: 1 });
    expect(sampled.samples).toBe(4);
    // Input seeking with -t: 30 frames per window, one frame of slack for the fps filter.
    expect(Math.abs(sampled.sampledSec - 4)).toBeLessThanOrEqual(4 / 30 + 1e-9);

    // The same encode of the whole source: the sampled estimate must be near it. Windows taken
    // only from the start (the still half) would come out several times lower.
    const args = complexityProbeArgs(probe, {
      input: path,
      windows: [{ startSec: 0, durationSec: null }],
      keyframeSec: 1,
      preset: 'veryfast',
    });
    const whole = framecrcTotals((await run('ffmpeg', args, RUN)).stdout);
    const wholeBpp = (whole.bytes * 8) / (320 * 180 * whole.packets);
    expect(whole.packets).toBe(360);
    expect(sampled.complexityBpp / wholeBpp).toBeGreaterThan(0.7);
    expect(sampled.complexityBpp / wholeBpp).toBeLessThan(1.4);
  }, 180_000);

  it('seeks on the input (-ss before -i) and encodes uncapped at the probe CRF', async () => {
    const path = await makeClip('seek.mp4', noisyGraph('320x180', 1));
    const probe = { ...(await probeVideo(path, RUN)), durationSec: 7200 };
    const args = complexityProbeArgs(probe, {
      input: path,
      windows: complexitySampleWindows(7200, 6),
      keyframeSec: 6,
      preset: 'veryfast',
    });
    const inputs = args.flatMap((a, i) => (a === '-i' ? [i] : []));
    expect(inputs).toHaveLength(COMPLEXITY_SAMPLES);
    for (const at of inputs) {
      expect(args.slice(at - 4, at)).toEqual(['-ss', expect.any(String), '-t', '6']);
    }
    expect(args[args.indexOf('-crf') + 1]).toBe('23');
    expect(args).not.toContain('-maxrate');
    expect(args).not.toContain('-b:v');
    expect(args[args.indexOf('-filter_complex') + 1]).toContain(`concat=n=${COMPLEXITY_SAMPLES}:v=1:a=0[v]`);
  });
});

describe('measureComplexity: HDR, errors', () => {
  it('tone-maps an HDR source with the chain the ladder encode uses, and measures it', async () => {
    const path = join(dir, 'pq.mp4');
    await ffmpeg(
      '-f',
      'lavfi',
      '-i',
      'testsrc2=size=320x180:rate=24:duration=1',
      '-c:v',
      'libx265',
      '-preset',
      'ultrafast',
      '-x265-params',
      'log-level=error',
      '-pix_fmt',
      'yuv420p10le',
      '-color_primaries',
      'bt2020',
      '-color_trc',
      'smpte2084',
      '-colorspace',
      'bt2020nc',
      path,
    );
    const probe = await probeVideo(path, RUN);
    expect(probe.video?.hdr).toBe('pq');

    const graph = (a: string[]) => a[a.indexOf('-filter_complex') + 1]!;
    const probeGraph = graph(
      complexityProbeArgs(probe, {
        input: path,
        windows: [{ startSec: 0, durationSec: null }],
        keyframeSec: 6,
        preset: 'veryfast',
      }),
    );
    const chain = /zscale=tin=.*format=yuv420p/.exec(probeGraph)?.[0];
    expect(chain).toMatch(/^zscale=tin=smpte2084:/);
    const plan = planLadder(ladderSourceFromProbe(probe), DEFAULT_LADDER_SETTINGS);
    expect(plan.toneMapFrom).toBe('pq');
    expect(graph(ladderEncodeArgs(plan, { input: path, outDir: dir, sourceFrameRateFps: 24 }))).toContain(
      chain,
    );

    const measured = await measureComplexity(path, probe, RUN);
    expect(measured.samples).toBe(1);
    expect(measured.sampledSec).toBe(1);
    expect(measured.complexityBpp).toBeGreaterThan(0);
  }, 120_000);

  it('refuses a source without video and stops when aborted', async () => {
    const path = await makeClip('abort.mp4', noisyGraph('320x180', 1));
    const probe = await probeVideo(path, RUN);
    await expect(measureComplexity(path, { ...probe, video: null }, RUN)).rejects.toThrow(/no video stream/);
    await expect(
      measureComplexity(path, probe, { ...RUN, signal: AbortSignal.abort() }),
    ).rejects.toMatchObject({ name: 'ToolError', exitCode: null });
  });
});
