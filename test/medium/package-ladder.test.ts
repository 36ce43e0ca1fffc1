import { cp, readFile, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LADDER_SETTINGS, type LadderPlan, planLadder } from '../../src/domain/ladder.js';
import { run } from '../../src/media/ffmpeg.js';
import { encodeLadder, ladderOutputLayout } from '../../src/media/ladder-encode.js';
import { type PackagedLadder, packageLadder } from '../../src/media/package-ladder.js';
import { probeVideo } from '../../src/media/video-probe.js';
import { tempDir } from '../helpers/tmp.js';

// Real ffmpeg/ffprobe 5.1: a 4 s 854x480 30 fps clip with audio is encoded as in
// ladder-encode.test.ts (480p + 360p + one AAC rendition, 2 s segments), packaged, and the result
// checked with the real tools and with numbers measured here, independently of the code under test.

const RUN = { timeoutMs: 120_000 };
const CLIP_SEC = 4;

let dir: string;
let cleanup: () => Promise<void>;
let outDir: string;
let plan: LadderPlan;
let packaged: PackagedLadder;

async function ffmpegQuiet(args: string[]): Promise<string> {
  const { stderr } = await run('ffmpeg', ['-hide_banner', '-v', 'error', ...args, '-f', 'null', '-'], RUN);
  return stderr;
}

/** EXTINF durations and segment files of a media playlist, and its target duration. */
async function readPlaylist(
  path: string,
): Promise<{ target: number; segments: { file: string; sec: number }[] }> {
  const text = await readFile(path, 'utf8');
  const durations = [...text.matchAll(/^#EXTINF:([\d.]+),/gm)].map((m) => Number(m[1]));
  const uris = text.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
  return {
    target: Number(/#EXT-X-TARGETDURATION:(\d+)/.exec(text)?.[1]),
    segments: uris.map((uri, i) => ({ file: join(dirname(path), uri), sec: durations[i]! })),
  };
}

/**
 * Peak and average bit rate of a media playlist from the files on disk. Peak as RFC 8216 4.1
 * defines it: the busiest run of consecutive segments lasting 0.5 to 1.5 target durations.
 */
async function measuredRates(playlist: string): Promise<{ peak: number; average: number }> {
  const { target, segments } = await readPlaylist(playlist);
  const bits = await Promise.all(segments.map(async (s) => (await stat(s.file)).size * 8));
  let peak = 0;
  for (let i = 0; i < segments.length; i++) {
    let b = 0;
    let d = 0;
    for (let j = i; j < segments.length; j++) {
      b += bits[j]!;
      d += segments[j]!.sec;
      if (d >= 0.5 * target && d <= 1.5 * target) peak = Math.max(peak, b / d);
    }
  }
  const total = segments.reduce((sum, s) => sum + s.sec, 0);
  return { peak, average: bits.reduce((a, b) => a + b, 0) / total };
}

/** The master's variants: URI -> attributes. */
function masterVariants(text: string): Map<string, Record<string, string>> {
  const lines = text.split('\n');
  const variants = new Map<string, Record<string, string>>();
  lines.forEach((line, i) => {
    if (!line.startsWith('#EXT-X-STREAM-INF:')) return;
    const attributes = Object.fromEntries(
      [...line.matchAll(/([A-Z-]+)=("[^"]*"|[^,]*)/g)].map((m) => [m[1]!, m[2]!.replace(/^"|"$/g, '')]),
    );
    variants.set(lines[i + 1]!, attributes);
  });
  return variants;
}

/** The box payload after the first `type` box header in an MP4 file. */
function boxPayload(bytes: Buffer, type: string): Buffer {
  const at = bytes.indexOf(type, 0, 'latin1');
  if (at < 4) throw new Error(`no ${type} box`);
  return bytes.subarray(at + 4, at - 4 + bytes.readUInt32BE(at - 4));
}

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('assetpipe-package-ladder-'));
  const source = join(dir, 'source.mp4');
  const size = 'size=854x480:rate=30';
  await run(
    'ffmpeg',
    [
      ...['-hide_banner', '-v', 'error', '-y'],
      ...['-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:duration=${CLIP_SEC}`],
      ...['-filter_complex', `testsrc2=${size}:duration=${CLIP_SEC}[v]`, '-map', '[v]', '-map', '0:a'],
      ...['-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-c:a', 'aac', source],
    ],
    RUN,
  );
  const probe = await probeVideo(source, RUN);
  const v = probe.video!;
  plan = planLadder(
    {
      durationSec: probe.durationSec,
      video: {
        widthPx: v.displayWidth,
        heightPx: v.displayHeight,
        frameRateFps: v.frameRate,
        variableFrameRate: v.variableFrameRate,
        frameCount: v.frameCount,
        dynamicRange: 'sdr',
        bitDepth: 8,
      },
      audio: { channels: probe.audio!.channels },
    },
    { ...DEFAULT_LADDER_SETTINGS, segmentDurationSec: 2 },
  );
  outDir = join(dir, 'out');
  const layout = await encodeLadder(plan, {
    input: source,
    outDir,
    sourceFrameRateFps: v.frameRate,
    durationSec: probe.durationSec,
    ...RUN,
  });
  packaged = await packageLadder({ plan, layout, outDir, expectedDurationSec: probe.durationSec!, ...RUN });
}, 180_000);

afterAll(async () => {
  await cleanup?.();
});

describe('packageLadder on a real 480p + 360p + audio ladder', () => {
  it('writes both manifests and finds nothing wrong', () => {
    expect(plan.rungs.map((r) => r.id)).toEqual(['h264-480p', 'h264-360p']);
    expect(packaged.masterPath).toBe(join(outDir, 'master.m3u8'));
    expect(packaged.mpdPath).toBe(join(outDir, 'manifest.mpd'));
    expect(packaged.findings).toEqual([]);
    expect(packaged.variants.map((v) => `${v.id} ${v.width}x${v.height}`)).toEqual([
      'h264-480p 854x480',
      'h264-360p 640x360',
    ]);
  });

  it('marks every media playlist, the audio one included, EXT-X-INDEPENDENT-SEGMENTS', async () => {
    for (const playlist of ['h264-480p/index.m3u8', 'h264-360p/index.m3u8', 'audio/index.m3u8']) {
      const text = await readFile(join(outDir, playlist), 'utf8');
      expect(text.match(/^#EXT-X-INDEPENDENT-SEGMENTS$/gm), playlist).toHaveLength(1);
    }
  });

  it('writes BANDWIDTH at or above the measured peak (audio included) and within 10 %; AVERAGE-BANDWIDTH within 10 %', async () => {
    const variants = masterVariants(await readFile(packaged.masterPath, 'utf8'));
    expect([...variants.keys()].sort()).toEqual(['h264-360p/index.m3u8', 'h264-480p/index.m3u8']);
    const audio = await measuredRates(join(outDir, 'audio/index.m3u8'));
    for (const [uri, attributes] of variants) {
      const video = await measuredRates(join(outDir, uri));
      const peak = video.peak + audio.peak;
      const average = video.average + audio.average;
      const bandwidth = Number(attributes.BANDWIDTH);
      const averageBandwidth = Number(attributes['AVERAGE-BANDWIDTH']);
      expect(bandwidth, uri).toBeGreaterThanOrEqual(peak);
      expect(bandwidth, uri).toBeLessThanOrEqual(peak * 1.1);
      expect(Math.abs(averageBandwidth - average) / average, uri).toBeLessThanOrEqual(0.1);
      const variant = packaged.variants.find((v) => `${v.id}/index.m3u8` === uri)!;
      expect([variant.bandwidth, variant.averageBandwidth]).toEqual([bandwidth, averageBandwidth]);
    }
  });

  it("declares the CODECS the init segments' avcC records and the AAC stream carry", async () => {
    const variants = masterVariants(await readFile(packaged.masterPath, 'utf8'));
    for (const rung of plan.rungs) {
      const init = await readFile(join(outDir, rung.id, `init_${rung.id}.mp4`));
      // avcC: configurationVersion, then profile_idc, constraint flags, level_idc: avc1.PPCCLL.
      const avcC = boxPayload(init, 'avcC');
      const avc1 = `avc1.${avcC.subarray(1, 4).toString('hex')}`;
      expect(variants.get(`${rung.id}/index.m3u8`)?.CODECS).toBe(`${avc1},mp4a.40.2`);
      expect(avcC[1]).toBe(100); // High
    }
  });

  it('writes an MPD that ffprobe reads as ~4 s with every rendition, and that decodes without an error', async () => {
    const { stdout } = await run(
      'ffprobe',
      [
        ...['-v', 'error', '-of', 'json', '-show_entries', 'format=duration:stream=codec_type,width,height'],
        packaged.mpdPath,
      ],
      RUN,
    );
    const out = JSON.parse(stdout) as {
      format: { duration: string };
      streams: { codec_type: string; width?: number; height?: number }[];
    };
    // ffmpeg 5.1's DASH demuxer keeps whole seconds of mediaPresentationDuration (PT4.032S).
    expect(Math.abs(Number(out.format.duration) - CLIP_SEC)).toBeLessThanOrEqual(0.05);
    expect(
      out.streams.map((s) => (s.codec_type === 'video' ? `${s.width}x${s.height}` : s.codec_type)).sort(),
    ).toEqual(['640x360', '854x480', 'audio']);
    expect(await ffmpegQuiet(['-i', packaged.mpdPath, '-map', '0'])).toBe('');
  });

  it("writes each SegmentTimeline in the track's own ticks, as the segments' sidx boxes count them", async () => {
    const mpd = await readFile(packaged.mpdPath, 'utf8');
    for (const id of [...plan.rungs.map((r) => r.id), 'audio']) {
      const representation = new RegExp(`<Representation id="${id}"[\\s\\S]*?</Representation>`).exec(
        mpd,
      )?.[0];
      expect(representation, id).toBeDefined();
      const timescale = Number(/timescale="(\d+)"/.exec(representation!)?.[1]);
      // <S t? d r?/> expanded to one duration per segment.
      const durations = [...representation!.matchAll(/<S (?:t="\d+" )?d="(\d+)"(?: r="(\d+)")?\/>/g)].flatMap(
        (m) => Array<number>(Number(m[2] ?? 0) + 1).fill(Number(m[1])),
      );
      const { segments } = await readPlaylist(join(outDir, id, 'index.m3u8'));
      expect(durations, id).toHaveLength(segments.length);
      for (const [i, segment] of segments.entries()) {
        // sidx v0/v1: version+flags, reference_ID, timescale, ...; one reference whose duration is
        // the 32-bit word after the reference type/size word.
        const sidx = boxPayload(await readFile(segment.file), 'sidx');
        const version = sidx[0]!;
        expect(sidx.readUInt32BE(8), `${id} segment ${i} timescale`).toBe(timescale);
        const references = 12 + (version === 0 ? 8 : 16) + 4;
        expect(sidx.readUInt32BE(references + 4), `${id} segment ${i} duration`).toBe(durations[i]);
      }
    }
  });

  it('writes a master playlist ffmpeg decodes without an error', async () => {
    expect(await ffmpegQuiet(['-i', packaged.masterPath])).toBe('');
  });

  it('reports exactly the segment that was deleted', async () => {
    const broken = join(dir, 'broken');
    await cp(outDir, broken, { recursive: true });
    await rm(join(broken, 'h264-360p', 'seg-00001.m4s'));
    const result = await packageLadder({
      plan,
      layout: ladderOutputLayout(plan, broken),
      outDir: broken,
      expectedDurationSec: CLIP_SEC,
      ...RUN,
    });
    expect(result.findings).toEqual([
      {
        code: 'SEGMENT_MISSING',
        message: expect.stringMatching(
          /^h264-360p\/index\.m3u8 line \d+: segment seg-00001\.m4s does not exist \(looked for h264-360p\/seg-00001\.m4s\)\.$/,
        ),
      },
    ]);
  });
});
