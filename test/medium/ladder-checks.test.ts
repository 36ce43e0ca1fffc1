import { cp, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LADDER_SETTINGS, type LadderPlan, planLadder } from '../../src/domain/ladder.js';
import { planStoryboard } from '../../src/domain/storyboard.js';
import { run } from '../../src/media/ffmpeg.js';
import { encodeLadder } from '../../src/media/ladder-encode.js';
import { ladderSourceFromProbe } from '../../src/media/ladder-source.js';
import { packageLadder } from '../../src/media/package-ladder.js';
import { renderPoster } from '../../src/media/poster.js';
import { renderStoryboard } from '../../src/media/storyboard-render.js';
import { probeVideo } from '../../src/media/video-probe.js';
import { serveFiles } from '../helpers/browser.js';
import {
  type CheckPackageOptions,
  checkPackage,
  checkPoster,
  checkStoryboard,
  downloadPackage,
  type ExpectedRung,
  type Finding,
  type PackageReport,
} from '../helpers/ladder-checks.js';
import { tempDir } from '../helpers/tmp.js';

// The acceptance checks of test/helpers/ladder-checks.ts, proven on a package made here the way the
// pipeline makes one (planLadder -> encodeLadder -> packageLadder, renderPoster, renderStoryboard):
// 3 s of 854x480 at 60 fps with a tone, 1 s segments, so the 480p rung runs at 60 fps and the 360p
// one at 30 and their keyframes (0, 1, 2 s) are compared across frame rates. Then every check is
// shown to fail on a copy broken in the one way it looks for.

const RUN = { timeoutMs: 120_000 };
const CLIP_SEC = 3;

let dir: string;
let cleanup: (() => Promise<void>) | undefined;
let source: string;
let pkg: string;
let plan: LadderPlan;
let durationSec: number;
let good: PackageReport;

const rungsOf = (p: LadderPlan): ExpectedRung[] =>
  p.rungs.map((r) => ({
    id: r.id,
    codec: r.codec,
    width: r.widthPx,
    height: r.heightPx,
    frameRate: r.frameRateFps,
  }));

function options(packageDir: string, extra: Partial<CheckPackageOptions> = {}): CheckPackageOptions {
  return { dir: packageDir, source, rungs: rungsOf(plan), audio: { codec: 'aac', channels: 2 }, ...extra };
}

/** A copy of the good package to break. */
async function copyOfPackage(name: string): Promise<string> {
  const copy = join(dir, name);
  await cp(pkg, copy, { recursive: true });
  return copy;
}

const show = (findings: readonly Finding[]) => JSON.stringify(findings, null, 1);

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('assetpipe-ladder-checks-'));
  source = join(dir, 'source.mp4');
  await run(
    'ffmpeg',
    [
      ...['-hide_banner', '-v', 'error', '-y'],
      ...['-f', 'lavfi', '-i', `testsrc2=size=854x480:rate=60:duration=${CLIP_SEC}`],
      ...['-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:duration=${CLIP_SEC}`],
      ...['-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-c:a', 'aac', source],
    ],
    RUN,
  );
  const probe = await probeVideo(source, RUN);
  durationSec = probe.durationSec!;
  plan = planLadder(ladderSourceFromProbe(probe), { ...DEFAULT_LADDER_SETTINGS, segmentDurationSec: 1 });
  pkg = join(dir, 'package');
  const layout = await encodeLadder(plan, {
    input: source,
    outDir: pkg,
    sourceFrameRateFps: probe.video!.frameRate,
    durationSec,
    ...RUN,
  });
  const packaged = await packageLadder({
    plan,
    layout,
    outDir: pkg,
    expectedDurationSec: durationSec,
    ...RUN,
  });
  expect(packaged.findings).toEqual([]);

  const scratchDir = join(dir, 'scratch');
  await mkdir(scratchDir);
  const poster = await renderPoster(source, { durationSec, scratchDir, ...RUN });
  await writeFile(join(pkg, 'poster.jpg'), poster.jpeg);
  const storyboardPlan = planStoryboard({ durationSec, width: 854, height: 480 });
  const storyboard = await renderStoryboard(source, storyboardPlan, { scratchDir, ...RUN });
  await writeFile(join(pkg, 'storyboard.vtt'), storyboard.vtt);
  for (const sheet of storyboard.sheets)
    await writeFile(join(pkg, `storyboard-${sheet.index}.jpg`), sheet.jpeg);

  good = await checkPackage(options(pkg));
}, 240_000);

afterAll(async () => {
  await cleanup?.();
});

describe('the package checks on a package the ladder code made', () => {
  it('find nothing wrong, and measure what they compared', () => {
    expect(plan.rungs.map((r) => `${r.id} ${r.widthPx}x${r.heightPx}@${r.frameRateFps}`)).toEqual([
      'h264-480p 854x480@60',
      'h264-360p 640x360@30',
    ]);
    expect(good.findings, show(good.findings)).toEqual([]);
    const byPlaylist = new Map(good.renditions.map((r) => [r.playlist, r]));
    expect([...byPlaylist.keys()].sort()).toEqual([
      'audio/index.m3u8',
      'h264-360p/index.m3u8',
      'h264-480p/index.m3u8',
    ]);
    for (const id of ['h264-480p', 'h264-360p']) {
      const rung = byPlaylist.get(`${id}/index.m3u8`)!;
      expect(rung.codec).toBe('h264');
      expect(rung.extent?.keyframeTimesSec.map((t) => Math.round(t * 1000))).toEqual([0, 1000, 2000]);
      expect(rung.extent!.endSec).toBeCloseTo(CLIP_SEC, 2);
      expect(rung.decodeErrors).toBe('');
      expect(rung.rates.segments).toBe(3);
    }
    expect(byPlaylist.get('audio/index.m3u8')).toMatchObject({ codec: 'aac', channels: 2, decodeErrors: '' });
    expect(good.variants).toHaveLength(2);
    for (const variant of good.variants) {
      expect(variant.bandwidth).toBeGreaterThanOrEqual(variant.measuredPeakBps - 1);
      // The audio rendition's share is in both numbers.
      expect(variant.measuredPeakBps).toBeGreaterThan(byPlaylist.get(variant.uri)!.rates.peakBps);
    }
  });

  it('report a corrupted segment through the null decode', async () => {
    const broken = await copyOfPackage('corrupted');
    const segment = join(broken, 'h264-480p', 'seg-00001.m4s');
    const bytes = await readFile(segment);
    // The same size (so BANDWIDTH still matches): the second half of the media data overwritten.
    bytes.fill(0x5a, Math.floor(bytes.length / 2), bytes.length - 16);
    await writeFile(segment, bytes);
    const report = await checkPackage(options(broken));
    const decode = report.findings.filter((f) => f.check === 'decode');
    expect(
      decode.map((f) => f.file),
      show(report.findings),
    ).toEqual(['h264-480p/index.m3u8']);
    expect(decode[0]!.message).toMatch(/^a null decode printed: \S/);
  });

  it('report a BANDWIDTH below the measured peak, one more than 10 % above it, and a wrong AVERAGE-BANDWIDTH', async () => {
    const broken = await copyOfPackage('bandwidth');
    const master = join(broken, 'master.m3u8');
    const text = await readFile(master, 'utf8');
    const [low, high] = good.variants;
    const edited = text
      .replace(`BANDWIDTH=${low!.bandwidth},`, `BANDWIDTH=${Math.floor(low!.measuredPeakBps * 0.97)},`)
      .replace(`BANDWIDTH=${high!.bandwidth},`, `BANDWIDTH=${Math.ceil(high!.measuredPeakBps * 1.12)},`)
      .replace(
        `AVERAGE-BANDWIDTH=${high!.averageBandwidth},`,
        `AVERAGE-BANDWIDTH=${Math.ceil(high!.measuredAverageBps * 0.85)},`,
      );
    expect(edited).not.toBe(text);
    await writeFile(master, edited);
    const report = await checkPackage(options(broken));
    expect(
      report.findings.map((f) => `${f.check}: ${f.message}`),
      show(report.findings),
    ).toEqual([
      expect.stringMatching(new RegExp(`^bandwidth: ${low!.uri}: BANDWIDTH=\\d+ is below the measured peak`)),
      expect.stringMatching(new RegExp(`^bandwidth: ${high!.uri}: BANDWIDTH=\\d+ is more than 10 % above`)),
      expect.stringMatching(
        new RegExp(`^average-bandwidth: ${high!.uri}: AVERAGE-BANDWIDTH=\\d+ is not within 10 %`),
      ),
    ]);
  });

  it('report keyframes that differ between rungs', async () => {
    // The 360p rung again, with 1.5 s segments: keyframes at 0 and 1.5 s instead of 0, 1 and 2 s.
    const other: LadderPlan = {
      ...plan,
      // The GOP follows the segment (1.5 s at 30 fps), or x264 would add its own keyframe at 1 s.
      rungs: [{ ...plan.rungs[1]!, gopFrames: 45 }],
      audio: null,
      segmentDurationSec: 1.5,
    };
    const otherDir = join(dir, 'other-gop');
    await encodeLadder(other, {
      input: source,
      outDir: otherDir,
      sourceFrameRateFps: 60,
      durationSec,
      ...RUN,
    });
    const broken = await copyOfPackage('keyframes');
    await rm(join(broken, 'h264-360p'), { recursive: true });
    await cp(join(otherDir, 'h264-360p'), join(broken, 'h264-360p'), { recursive: true });
    const report = await checkPackage(options(broken));
    const keyframes = report.findings.filter((f) => f.check === 'keyframes');
    expect(keyframes, show(report.findings)).toEqual([
      {
        check: 'keyframes',
        file: 'h264-360p/index.m3u8',
        message: expect.stringMatching(
          /^keyframes at 0, 1\.5 s; h264-480p\/index\.m3u8 has them at 0, 1, 2 s$/,
        ),
      },
    ]);
  });

  it('report a segment that does not start with a keyframe', async () => {
    const broken = await copyOfPackage('segment-start');
    const playlist = join(broken, 'h264-480p', 'index.m3u8');
    const text = await readFile(playlist, 'utf8');
    // The first EXTINF shortened: by the playlist, segment 1 now starts at 0.8 s, between keyframes.
    const edited = text.replace(/#EXTINF:1\.0+,\nseg-00000/, '#EXTINF:0.800000,\nseg-00000');
    expect(edited).not.toBe(text);
    await writeFile(playlist, edited);
    const report = await checkPackage(options(broken));
    expect(
      report.findings.filter((f) => f.check === 'keyframes'),
      show(report.findings),
    ).toEqual([
      {
        check: 'keyframes',
        file: 'h264-480p/index.m3u8',
        message: 'segment 1 (seg-00001.m4s) starts at 0.8 s without a keyframe there',
      },
      {
        check: 'keyframes',
        file: 'h264-480p/index.m3u8',
        message: 'segment 2 (seg-00002.m4s) starts at 1.8 s without a keyframe there',
      },
    ]);
  });

  it('report a codec, a size and a frame rate other than planned', async () => {
    const rungs = rungsOf(plan);
    const wrong: ExpectedRung[] = [
      { ...rungs[0]!, codec: 'hevc' },
      { ...rungs[1]!, width: 640, height: 352, frameRate: 25 },
    ];
    const report = await checkPackage(options(pkg, { rungs: wrong, audio: { codec: 'aac', channels: 6 } }));
    expect(
      report.findings.map((f) => `${f.check} ${f.file}`),
      show(report.findings),
    ).toEqual([
      'codec h264-480p/index.m3u8',
      'size h264-360p/index.m3u8',
      'frame-rate h264-360p/index.m3u8',
      'codec audio/index.m3u8',
    ]);
  });

  it('report a rendition that stops early, and one the plan does not have', async () => {
    const broken = await copyOfPackage('short');
    const playlist = join(broken, 'h264-360p', 'index.m3u8');
    const text = await readFile(playlist, 'utf8');
    // The last segment (and its EXTINF) dropped from the playlist: 2 s of the 3 s left.
    const cut = text.replace(/#EXTINF:[\d.]+,\nseg-00002\.m4s\n/, '');
    expect(cut).not.toBe(text);
    await writeFile(playlist, cut);
    const report = await checkPackage(options(broken, { rungs: rungsOf(plan).slice(0, 1) }));
    const messages = report.findings.map((f) => `${f.check} ${f.file}: ${f.message}`);
    expect(messages, show(report.findings)).toContain(
      `duration h264-360p/index.m3u8: lasts 2 s, the source's video 3 s: more than one frame (0.0177 s) apart`,
    );
    expect(messages).toContain('manifest master.m3u8: variant h264-360p/index.m3u8 is not in the plan');
  });
});

describe('the storyboard and poster checks', () => {
  it('find nothing wrong with what renderStoryboard and renderPoster made', async () => {
    const storyboard = await checkStoryboard({ vttPath: join(pkg, 'storyboard.vtt'), durationSec });
    expect(storyboard.findings, show(storyboard.findings)).toEqual([]);
    expect(storyboard.cues).toHaveLength(3);
    expect(storyboard.cues.at(-1)!.endSec).toBeCloseTo(durationSec, 3);
    expect([...storyboard.sheets.values()]).toEqual([{ width: 480, height: 90 }]);
    const poster = await checkPoster(join(pkg, 'poster.jpg'));
    expect(poster.findings, show(poster.findings)).toEqual([]);
    expect([poster.width, poster.height]).toEqual([854, 480]);
  });

  it('report a cue outside its sprite, a gap between cues and cues that stop before the end', async () => {
    const text = await readFile(join(pkg, 'storyboard.vtt'), 'utf8');
    const broken = join(dir, 'broken.vtt');
    const edited = text
      // Cue 1's tile moved past the sheet's right edge (the sheet is 3 tiles of 160 px wide).
      .replace('#xywh=160,0,160,90', '#xywh=400,0,160,90')
      // Cue 2 starts late (a gap after cue 1) and ends at 2.5 s instead of the end.
      .replace(/00:00:02\.000 --> 00:00:03\.\d{3}/, '00:00:02.200 --> 00:00:02.500');
    expect(edited).not.toBe(text);
    await writeFile(broken, edited);
    const report = await checkStoryboard({
      vttPath: broken,
      durationSec,
      sheetPath: (uri) => join(pkg, uri),
    });
    expect(
      report.findings.map((f) => f.message),
      show(report.findings),
    ).toEqual([
      'cue 2 starts at 2.2 s, the one before ends at 2 s (a gap or an overlap)',
      `the cues end at 2.5 s, the video lasts ${Number(durationSec.toFixed(4))} s`,
      'cue 1: #xywh=400,0,160,90 is not inside storyboard-0.jpg (480x90)',
    ]);
  });

  it('report a black poster', async () => {
    const black = join(dir, 'black.jpg');
    await sharp({ create: { width: 320, height: 180, channels: 3, background: '#101010' } })
      .jpeg()
      .toFile(black);
    const report = await checkPoster(black);
    expect(report.findings.map((f) => f.message)).toEqual([
      expect.stringMatching(/^mean luma [\d.]+ \(of 255\) is below 32: a black frame$/),
    ]);
  });
});

describe('downloadPackage', () => {
  it('fetches every file a player needs, and the storyboard and poster, with the layout kept', async () => {
    // Served below a prefix like the real /stream/<asset>/<version>/<token>/ one.
    const root = join(dir, 'served');
    const prefix = 'stream/asset-1/1/token';
    await cp(pkg, join(root, prefix), { recursive: true });
    const server = await serveFiles({ root });
    try {
      const into = join(dir, 'downloaded');
      const got = await downloadPackage({
        baseUrl: server.origin,
        masterUrl: `/${prefix}/master.m3u8`,
        dir: into,
        storyboardVttUrl: `/${prefix}/storyboard.vtt`,
        extraUrls: [`/${prefix}/poster.jpg`],
      });
      expect([...got.files].sort()).toEqual([
        'audio/index.m3u8',
        'audio/init_audio.mp4',
        'audio/seg-00000.m4s',
        'audio/seg-00001.m4s',
        'audio/seg-00002.m4s',
        ...(await stat(join(pkg, 'audio', 'seg-00003.m4s')).then(
          () => ['audio/seg-00003.m4s'],
          () => [],
        )),
        'h264-360p/index.m3u8',
        'h264-360p/init_h264-360p.mp4',
        'h264-360p/seg-00000.m4s',
        'h264-360p/seg-00001.m4s',
        'h264-360p/seg-00002.m4s',
        'h264-480p/index.m3u8',
        'h264-480p/init_h264-480p.mp4',
        'h264-480p/seg-00000.m4s',
        'h264-480p/seg-00001.m4s',
        'h264-480p/seg-00002.m4s',
        'master.m3u8',
        'poster.jpg',
        'storyboard-0.jpg',
        'storyboard.vtt',
      ]);
      for (const file of got.files) {
        expect(await readFile(join(into, file)), file).toEqual(await readFile(join(pkg, file)));
      }
      expect(got.storyboard?.sheets).toEqual(new Map([['storyboard-0.jpg', join(into, 'storyboard-0.jpg')]]));
      const report = await checkPackage(options(into));
      expect(report.findings, show(report.findings)).toEqual([]);
      // A file the package lists but the server does not have is an error naming it.
      await rm(join(root, prefix, 'h264-360p', 'seg-00001.m4s'));
      await expect(
        downloadPackage({
          baseUrl: server.origin,
          masterUrl: `/${prefix}/master.m3u8`,
          dir: join(dir, 'again'),
        }),
      ).rejects.toThrow(`GET /${prefix}/h264-360p/seg-00001.m4s (no API key): 404`);
    } finally {
      await server.close();
    }
  });
});
