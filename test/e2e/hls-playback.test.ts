import { readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AudioRenditionMedia,
  codecString,
  type MeasuredMedia,
  type VideoRungMedia,
  writeMasterPlaylist,
} from '../../src/domain/hls-master.js';
import { DEFAULT_LADDER_SETTINGS, type LadderPlan, planLadder } from '../../src/domain/ladder.js';
import { run } from '../../src/media/ffmpeg.js';
import { encodeLadder, type LadderOutputLayout } from '../../src/media/ladder-encode.js';
import { probeVideo } from '../../src/media/video-probe.js';
import { type FileServer, HLS_JS_FILE, launchChromium, serveFiles } from '../helpers/browser.js';
import {
  openPlayer as openPlayerAt,
  type PageLevel,
  PLAYER_PAGE,
  snapshot,
  waitForProgress,
  waitInPage,
} from '../helpers/hls-player.js';
import { tempDir } from '../helpers/tmp.js';

const openPlayer = () => openPlayerAt(browser!, `${server!.origin}/index.html`);

// The playback canary of issue 5, in real Chromium: Debian's chromium driven by playwright-core
// loads hls.js and plays an HLS package that the ladder encoder wrote in this test (8 s of 854x480
// testsrc2 + a sine, 2 s segments, two rungs: 480p and 360p, and one AAC rendition). The master is
// written here with writeMasterPlaylist from the media playlists' EXTINF durations and the
// segments' sizes on disk, as the packaging step will do. Asserted: hls.js sees both levels, plays
// to the end with no fatal error, and a level chosen by hand (`hls.currentLevel`) is switched to,
// shown at its own size, and playback goes on.

const RUN = { timeoutMs: 120_000 };
const CLIP_SEC = 8;
const SEGMENT_SEC = 2;

let dir: string;
let cleanup: (() => Promise<void>) | undefined;
let plan: LadderPlan;
let layout: LadderOutputLayout;
let server: FileServer | undefined;
let browser: Browser | undefined;

async function ffmpeg(...args: string[]): Promise<void> {
  await run('ffmpeg', ['-hide_banner', '-v', 'error', '-y', ...args], RUN);
}

/** ffprobe's codec facts of the first stream of a media playlist, for its RFC 6381 string. */
async function probedCodecString(playlist: string): Promise<string> {
  const { stdout } = await run(
    'ffprobe',
    [
      '-v',
      'error',
      '-of',
      'json',
      '-select_streams',
      '0',
      '-show_entries',
      'stream=codec_name,profile,level',
      playlist,
    ],
    RUN,
  );
  const [stream] = (
    JSON.parse(stdout) as { streams: { codec_name: string; profile: string; level?: number }[] }
  ).streams;
  if (stream === undefined) throw new Error(`${playlist}: ffprobe found no stream`);
  return codecString({ codecName: stream.codec_name, profile: stream.profile, level: stream.level });
}

/** A media playlist's segments as written: EXTINF durations and sizes on disk. */
async function measureMedia(outDir: string, uri: string): Promise<MeasuredMedia> {
  const path = join(outDir, uri);
  const text = await readFile(path, 'utf8');
  const durations = [...text.matchAll(/^#EXTINF:([\d.]+),/gm)].map((m) => Number(m[1]));
  const files = text.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
  expect(files).toHaveLength(durations.length);
  const segments = await Promise.all(
    files.map(async (file, i) => ({
      durationSec: durations[i]!,
      bytes: (await stat(join(dirname(path), file))).size,
    })),
  );
  const target = /^#EXT-X-TARGETDURATION:(\d+)/m.exec(text)?.[1];
  return { uri, segments, ...(target === undefined ? {} : { targetDurationSec: Number(target) }) };
}

/** The master playlist over the encoded renditions, as the packaging step will write it. */
async function writeMaster(outDir: string): Promise<string> {
  const rungs: VideoRungMedia[] = await Promise.all(
    plan.rungs.map(async (rung, i) => {
      const uri = layout.rungs[i]!.playlist;
      return {
        name: rung.name,
        width: rung.widthPx,
        height: rung.heightPx,
        frameRate: rung.frameRateFps,
        videoCodecs: await probedCodecString(join(outDir, uri)),
        media: await measureMedia(outDir, uri),
      };
    }),
  );
  let audio: AudioRenditionMedia | undefined;
  if (layout.audio !== null && plan.audio !== null) {
    audio = {
      kind: 'rendition',
      groupId: 'audio',
      name: 'Audio',
      channels: plan.audio.channels,
      codecs: await probedCodecString(join(outDir, layout.audio.playlist)),
      media: await measureMedia(outDir, layout.audio.playlist),
    };
  }
  return writeMasterPlaylist({ rungs, audio });
}

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('assetpipe-hls-playback-'));
  const source = join(dir, 'source.mp4');
  await ffmpeg(
    '-f',
    'lavfi',
    '-i',
    `testsrc2=size=854x480:rate=30:duration=${CLIP_SEC}`,
    '-f',
    'lavfi',
    '-i',
    `sine=frequency=440:sample_rate=48000:duration=${CLIP_SEC}`,
    '-c:v',
    'libx264',
    '-preset',
    'veryfast',
    '-pix_fmt',
    'yuv420p',
    '-c:a',
    'aac',
    source,
  );
  const probe = await probeVideo(source, RUN);
  const video = probe.video!;
  plan = planLadder(
    {
      durationSec: probe.durationSec,
      video: {
        widthPx: video.displayWidth,
        heightPx: video.displayHeight,
        frameRateFps: video.frameRate,
        variableFrameRate: video.variableFrameRate,
        frameCount: video.frameCount,
        dynamicRange: video.hdr ?? 'sdr',
        bitDepth: video.bitDepth ?? 8,
      },
      audio: probe.audio === null ? null : { channels: probe.audio.channels },
    },
    { ...DEFAULT_LADDER_SETTINGS, segmentDurationSec: SEGMENT_SEC },
  );
  const outDir = join(dir, 'package');
  layout = await encodeLadder(plan, {
    input: source,
    outDir,
    sourceFrameRateFps: video.frameRate,
    videoStreamIndex: video.index,
    audioStreamIndex: probe.audio?.index,
    durationSec: probe.durationSec,
    ...RUN,
  });
  await writeFile(join(outDir, 'master.m3u8'), await writeMaster(outDir));
  await writeFile(join(outDir, 'index.html'), PLAYER_PAGE);
  server = await serveFiles({ root: outDir, files: { '/hls.min.js': HLS_JS_FILE } });
  browser = await launchChromium();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await cleanup?.();
});

describe('hls.js in Debian Chromium, on an HLS package of the ladder encoder', () => {
  it('has the package the checks below assume: two rungs and one audio rendition', () => {
    expect(plan.rungs.map((r) => `${r.widthPx}x${r.heightPx}`)).toEqual(['854x480', '640x360']);
    expect(layout.audio).not.toBeNull();
  });

  it('plays the master to its end at 4x with both levels and no fatal error', async ({ annotate }) => {
    const { page, pageErrors, close } = await openPlayer();
    try {
      const levels = await page.evaluate<PageLevel[]>(`start('/master.m3u8', { rate: 4, startLevel: -1 })`);
      // The master lists the rungs lowest BANDWIDTH first: hls.js level 0 is 360p, level 1 is 480p.
      expect(levels.map((l) => `${l.width}x${l.height}`)).toEqual(['640x360', '854x480']);
      expect(levels.every((l) => l.codecs[0]?.startsWith('avc1.') && l.codecs[1] === 'mp4a.40.2')).toBe(true);

      await waitInPage(page, 'state.ended', 'the ended event');
      const end = await snapshot(page);
      expect(end.levels).toBe(2);
      expect(end.ended).toBe(true);
      expect(Math.abs(end.currentTime - end.duration)).toBeLessThanOrEqual(0.3);
      expect(Math.abs(end.duration - CLIP_SEC)).toBeLessThan(0.2);
      expect(end.state.errors.filter((e) => e.fatal)).toEqual([]);
      expect(end.state.mediaErrors).toEqual([]);
      expect(pageErrors).toEqual([]);

      // Both tracks start at 0, within one frame. With ffmpeg's default timestamp shift, the video was
      // delayed by an empty edit in its init segment (x264's B-frame delay, 66 ms at 30 fps) that
      // Chromium ignores: video was buffered from 0.0667 s, audio from 0 (audio ~45 ms early), and
      // hls.js sometimes skipped the start gap (non-fatal `bufferSeekOverHole`). ladder-encode.ts
      // writes no empty edit now (its header says how).
      const { audio, video } = end.state.firstBufferStart;
      const frame = 1 / 30;
      expect(video, 'video: start of the first appended range').toBeGreaterThanOrEqual(0);
      expect(video).toBeLessThan(frame);
      expect(audio, 'audio: start of the first appended range').toBeGreaterThanOrEqual(0);
      expect(audio).toBeLessThan(frame);
      expect(end.state.firstPlaying?.bufferedStart).toBeLessThan(frame);
      await annotate(
        `buffered.start(0) at first 'playing': ${end.state.firstPlaying?.bufferedStart}; ` +
          `first appended range per source buffer: ${JSON.stringify(end.state.firstBufferStart)}; ` +
          `duration ${end.duration}; non-fatal hls.js errors: ${JSON.stringify(end.state.errors)}`,
      );
    } finally {
      await close();
    }
  });

  it('switches quality levels by hand while playing, and playback goes on to the end', async ({
    annotate,
  }) => {
    const { page, pageErrors, close } = await openPlayer();
    try {
      // Start on 480p (level 1) at normal speed, so there is time to switch twice.
      await page.evaluate(`start('/master.m3u8', { rate: 1, startLevel: 1 })`);
      await waitInPage(page, 'state.levelSwitched.some((s) => s.level === 1)', 'the start on level 1');
      await waitForProgress(page, 0.3, 'playback on level 1');

      for (const [level, height] of [
        [0, 360],
        [1, 480],
      ] as const) {
        const before = (await snapshot(page)).state.levelSwitched.length;
        const requestsBefore = server!.requests.length;
        await page.evaluate(`setLevel(${level})`);
        await waitInPage(
          page,
          `state.levelSwitched.slice(${before}).some((s) => s.level === ${level})`,
          `LEVEL_SWITCHED to level ${level}`,
        );
        // The frames on screen are the new rung's: the element reports its size.
        await waitInPage(page, `video.videoHeight === ${height}`, `${height}p frames on screen`);
        await waitForProgress(page, 0.3, `playback after the switch to level ${level}`);
        expect((await snapshot(page)).currentLevel).toBe(level);
        // The switch fetched the new rung's segments from the server.
        const fetched = server!.requests.slice(requestsBefore).map((r) => r.path);
        expect(fetched.filter((path) => path.startsWith(`/h264-${height}p/seg-`)).length).toBeGreaterThan(0);
      }
      expect(server!.requests.filter((r) => r.status !== 200)).toEqual([]);

      await page.evaluate('setRate(4)');
      await waitInPage(page, 'state.ended', 'the ended event after the switches');
      const end = await snapshot(page);
      expect(Math.abs(end.currentTime - end.duration)).toBeLessThanOrEqual(0.3);
      expect(end.state.errors.filter((e) => e.fatal)).toEqual([]);
      expect(end.state.mediaErrors).toEqual([]);
      expect(pageErrors).toEqual([]);
      await annotate(
        `LEVEL_SWITCHED: ${JSON.stringify(end.state.levelSwitched)}; ` +
          `non-fatal hls.js errors: ${JSON.stringify(end.state.errors)}`,
      );
    } finally {
      await close();
    }
  });
});
