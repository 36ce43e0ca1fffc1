import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LADDER_SETTINGS, type LadderPlan, planLadder } from '../../src/domain/ladder.js';
import { run } from '../../src/media/ffmpeg.js';
import { encodeLadder, type LadderOutputLayout } from '../../src/media/ladder-encode.js';
import { ladderSourceFromProbe } from '../../src/media/ladder-source.js';
import { type PackagedLadder, packageLadder } from '../../src/media/package-ladder.js';
import { probeVideo } from '../../src/media/video-probe.js';
import { tempDir } from '../helpers/tmp.js';

// Audio-only sources (no video stream) through the same path as a video: probe, plan, encodeLadder,
// packageLadder, with real ffmpeg 5.1 on 3 s sine tones made as WAV and as MP3. 1 s segments, so
// the peak BANDWIDTH is measured over several segments and the short tail (AAC frames do not end on
// the segment boundary).

const RUN = { timeoutMs: 120_000 };
const CLIP_SEC = 3;

let dir: string;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('assetpipe-audio-only-'));
});

afterAll(async () => {
  await cleanup?.();
});

/** RFC 8216 4.1 peak (busiest run of segments lasting 0.5 to 1.5 target durations) and average. */
async function measuredRates(playlist: string): Promise<{ peak: number; average: number }> {
  const text = await readFile(playlist, 'utf8');
  const target = Number(/#EXT-X-TARGETDURATION:(\d+)/.exec(text)?.[1]);
  const durations = [...text.matchAll(/^#EXTINF:([\d.]+),/gm)].map((m) => Number(m[1]));
  const uris = text.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
  const bits = await Promise.all(
    uris.map(async (uri) => (await stat(join(dirname(playlist), uri))).size * 8),
  );
  let peak = 0;
  for (let i = 0; i < uris.length; i++) {
    let b = 0;
    let d = 0;
    for (let j = i; j < uris.length; j++) {
      b += bits[j]!;
      d += durations[j]!;
      if (d >= 0.5 * target && d <= 1.5 * target) peak = Math.max(peak, b / d);
    }
  }
  const total = durations.reduce((a, b) => a + b, 0);
  return { peak, average: bits.reduce((a, b) => a + b, 0) / total };
}

describe.each([
  { name: 'wav', codec: ['-c:a', 'pcm_s16le'] },
  { name: 'mp3', codec: ['-c:a', 'libmp3lame', '-b:a', '128k'] },
])('an audio-only $name source', ({ name, codec }) => {
  let plan: LadderPlan;
  let layout: LadderOutputLayout;
  let outDir: string;
  let packaged: PackagedLadder;
  let durationSec: number;

  beforeAll(async () => {
    const input = join(dir, `tone.${name}`);
    await run(
      'ffmpeg',
      [
        ...['-hide_banner', '-v', 'error', '-y'],
        ...['-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=44100:duration=${CLIP_SEC}`],
        ...codec,
        input,
      ],
      RUN,
    );
    const probe = await probeVideo(input, RUN);
    durationSec = probe.durationSec!;
    plan = planLadder(ladderSourceFromProbe(probe), { ...DEFAULT_LADDER_SETTINGS, segmentDurationSec: 1 });
    outDir = join(dir, `${name}-out`);
    layout = await encodeLadder(plan, {
      input,
      outDir,
      sourceFrameRateFps: null,
      ...(probe.audio ? { audioStreamIndex: probe.audio.index } : {}),
      durationSec,
      ...RUN,
    });
    packaged = await packageLadder({ plan, layout, outDir, expectedDurationSec: durationSec, ...RUN });
  }, 120_000);

  it('is planned and encoded as audio only, with an init segment named after the rendition', async () => {
    expect(plan.kind).toBe('audio-only');
    expect(plan.rungs).toEqual([]);
    expect(layout).toEqual({
      rungs: [],
      audio: { name: 'audio', playlist: 'audio/index.m3u8', dir: join(outDir, 'audio') },
    });
    const playlist = await readFile(join(outDir, 'audio', 'index.m3u8'), 'utf8');
    expect(playlist).toContain('#EXT-X-MAP:URI="init_audio.mp4"');
    expect((await stat(join(outDir, 'audio', 'init_audio.mp4'))).size).toBeGreaterThan(0);
  });

  it('packages without findings: one variant, the audio playlist, with only the audio codec', async () => {
    expect(packaged.findings).toEqual([]);
    const master = await readFile(packaged.masterPath, 'utf8');
    expect(master).not.toContain('#EXT-X-MEDIA');
    expect(master).not.toContain('RESOLUTION=');
    const variants = [...master.matchAll(/^#EXT-X-STREAM-INF:(.*)\n(.+)$/gm)];
    expect(variants.map((m) => m[2])).toEqual(['audio/index.m3u8']);
    const attributes = variants[0]![1]!;
    expect(attributes).toMatch(/(^|,)CODECS="mp4a\.40\.2"(,|$)/);

    const bandwidth = Number(/(?:^|,)BANDWIDTH=(\d+)/.exec(attributes)?.[1]);
    const average = Number(/AVERAGE-BANDWIDTH=(\d+)/.exec(attributes)?.[1]);
    const measured = await measuredRates(join(outDir, 'audio', 'index.m3u8'));
    // Apple's authoring rules: BANDWIDTH at least the peak and within 10 % of it, AVERAGE-BANDWIDTH
    // within 10 % of the average.
    expect(bandwidth).toBeGreaterThanOrEqual(measured.peak);
    expect(bandwidth).toBeLessThanOrEqual(measured.peak * 1.1);
    expect(Math.abs(average - measured.average) / measured.average).toBeLessThanOrEqual(0.1);
    expect(packaged.variants).toEqual([
      { id: 'audio', width: 0, height: 0, bandwidth, averageBandwidth: average, codecs: 'mp4a.40.2' },
    ]);
  });

  it('writes an MPD with only the audio AdaptationSet', async () => {
    const mpd = await readFile(packaged.mpdPath, 'utf8');
    expect([...mpd.matchAll(/<AdaptationSet [^>]*contentType="(\w+)"/g)].map((m) => m[1])).toEqual(['audio']);
    expect(mpd).toContain('<Representation id="audio"');
    expect(mpd).toContain('codecs="mp4a.40.2"');
  });

  it('plays back from the master and the MPD as ~3 s of stereo AAC, without a decode error', async () => {
    for (const manifest of [packaged.masterPath, packaged.mpdPath]) {
      const { stdout } = await run(
        'ffprobe',
        [
          ...['-v', 'error', '-of', 'json'],
          ...['-show_entries', 'stream=codec_type,codec_name,channels:format=duration'],
          manifest,
        ],
        RUN,
      );
      const out = JSON.parse(stdout) as {
        streams: { codec_type: string; codec_name: string; channels: number }[];
      };
      expect(
        out.streams.map((s) => `${s.codec_type} ${s.codec_name} ${s.channels}`),
        manifest,
      ).toEqual(['audio aac 2']);
      const { stderr } = await run(
        'ffmpeg',
        ['-hide_banner', '-v', 'error', '-i', manifest, '-map', '0', '-f', 'null', '-'],
        RUN,
      );
      expect(stderr, manifest).toBe('');
    }
    const playlist = await readFile(join(outDir, 'audio', 'index.m3u8'), 'utf8');
    const total = [...playlist.matchAll(/^#EXTINF:([\d.]+),/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    expect(Math.abs(total - CLIP_SEC)).toBeLessThanOrEqual(0.1);
  });
});
