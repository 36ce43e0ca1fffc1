import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LADDER_SETTINGS, type LadderPlan, planLadder } from '../../src/domain/ladder.js';
import { run } from '../../src/media/ffmpeg.js';
import { encodeLadder, type LadderOutputLayout } from '../../src/media/ladder-encode.js';
import { ladderSourceFromProbe } from '../../src/media/ladder-source.js';
import { type PackagedLadder, packageLadder } from '../../src/media/package-ladder.js';
import { probeVideo } from '../../src/media/video-probe.js';
import { tempDir } from '../helpers/tmp.js';

// Real ffmpeg 5.1 (libx264, libx265, libsvtav1): a 2 s 320x180 clip with audio, planned with
// H.264, HEVC and AV1 and 1 s segments (so keyframes at 0 and 1 s), encoded in one process and
// packaged. The clip cuts from testsrc2 to SMPTE bars at 0.5 s, where an encoder left to its own
// scene detection would put a keyframe that the other rungs do not have. The checks read the output
// with ffprobe and the init segments' bytes, independently of the code under test.

const RUN = { timeoutMs: 120_000 };
const CLIP_SEC = 2;
const SEGMENT_SEC = 1;

let dir: string;
let cleanup: () => Promise<void>;
let outDir: string;
let plan: LadderPlan;
let layout: LadderOutputLayout;
let packaged: PackagedLadder;
let source: string;
let sourceFps: number | null;

async function keyframeTimes(playlist: string): Promise<{ all: number; keyframes: number[] }> {
  const { stdout } = await run(
    'ffprobe',
    [
      '-v',
      'error',
      '-of',
      'json',
      '-select_streams',
      'v:0',
      '-show_entries',
      'packet=pts_time,flags',
      playlist,
    ],
    RUN,
  );
  const { packets } = JSON.parse(stdout) as { packets: { pts_time: string; flags: string }[] };
  return {
    all: packets.length,
    keyframes: packets.filter((p) => p.flags.startsWith('K')).map((p) => Number(p.pts_time)),
  };
}

async function ffprobeJson(args: string[]): Promise<Record<string, unknown>> {
  const { stdout } = await run('ffprobe', ['-v', 'error', '-of', 'json', ...args], RUN);
  return JSON.parse(stdout) as Record<string, unknown>;
}

/** The payloads of the boxes at `path` in an MP4 file or box body. */
function boxes(bytes: Buffer, path: readonly string[]): Buffer[] {
  const [type, ...rest] = path;
  const found: Buffer[] = [];
  for (let at = 0; at + 8 <= bytes.length; ) {
    const size = bytes.readUInt32BE(at);
    if (size < 8) break;
    if (bytes.toString('latin1', at + 4, at + 8) === type) {
      const body = bytes.subarray(at + 8, at + size);
      found.push(...(rest.length === 0 ? [body] : boxes(body, rest)));
    }
    at += size;
  }
  return found;
}

/** The init segment's sample entry type and the body of its decoder configuration box. */
function sampleEntry(init: Buffer, config: string): { type: string; config: Buffer } {
  const [stsd] = boxes(init, ['moov', 'trak', 'mdia', 'minf', 'stbl', 'stsd']);
  if (stsd === undefined) throw new Error('no stsd');
  // Full box header, entry count, then the entry: size, type, 78 bytes of visual fields, children.
  const entry = stsd.subarray(8, 8 + stsd.readUInt32BE(8));
  const [body] = boxes(entry.subarray(8 + 78), [config]);
  if (body === undefined) throw new Error(`no ${config}`);
  return { type: entry.toString('latin1', 4, 8), config: body };
}

/**
 * RFC 6381 strings written out from the configuration records by hand (ISO/IEC 14496-15 E.3 for
 * HEVC, the AV1 ISOBMFF binding for AV1), as a check on the packager's own reading.
 */
function hevcCodecs(type: string, hvcC: Buffer): string {
  const profile = hvcC[1]! & 0x1f;
  const tier = hvcC[1]! & 0x20 ? 'H' : 'L';
  const compatibility = hvcC.readUInt32BE(2);
  let reversed = 0;
  for (let bit = 0; bit < 32; bit++) if (compatibility & (1 << bit)) reversed |= 1 << (31 - bit);
  const constraints = [...hvcC.subarray(6, 12)];
  while (constraints.at(-1) === 0) constraints.pop();
  return [
    type,
    profile,
    (reversed >>> 0).toString(16).toUpperCase(),
    `${tier}${hvcC[12]}`,
    ...constraints.map((b) => b.toString(16).toUpperCase()),
  ].join('.');
}

function av1Codecs(av1C: Buffer): string {
  const profile = av1C[1]! >> 5;
  const level = av1C[1]! & 0x1f;
  const tier = av1C[2]! & 0x80 ? 'H' : 'M';
  const depth = av1C[2]! & 0x40 ? (av1C[2]! & 0x20 ? 12 : 10) : 8;
  return `av01.${profile}.${String(level).padStart(2, '0')}${tier}.${String(depth).padStart(2, '0')}`;
}

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('assetpipe-ladder-codecs-'));
  source = join(dir, 'source.mp4');
  const size = 'size=320x180:rate=30';
  await run(
    'ffmpeg',
    [
      ...['-hide_banner', '-v', 'error', '-y'],
      ...['-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:duration=${CLIP_SEC}`],
      '-filter_complex',
      `testsrc2=${size}:duration=0.5[a];smptebars=${size}:duration=${CLIP_SEC - 0.5}[b];[a][b]concat=n=2:v=1:a=0[v]`,
      ...['-map', '[v]', '-map', '0:a'],
      ...['-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-c:a', 'aac', source],
    ],
    RUN,
  );
  const probe = await probeVideo(source, RUN);
  sourceFps = probe.video!.frameRate;
  plan = planLadder(ladderSourceFromProbe(probe), {
    ...DEFAULT_LADDER_SETTINGS,
    // The 180p rungs' caps (283 kb/s H.264 + 128 kb/s audio) are below the default 400 kb/s.
    minTotalBitrateBps: 228_000,
    segmentDurationSec: SEGMENT_SEC,
    codecs: ['h264', 'hevc', 'av1'],
  });
  outDir = join(dir, 'out');
  layout = await encodeLadder(plan, {
    input: source,
    outDir,
    sourceFrameRateFps: sourceFps,
    durationSec: probe.durationSec,
    ...RUN,
  });
  packaged = await packageLadder({ plan, layout, outDir, expectedDurationSec: CLIP_SEC, ...RUN });
}, 240_000);

afterAll(async () => {
  await cleanup?.();
});

describe('a ladder with H.264, HEVC and AV1 rungs', () => {
  it('is planned as one rung per codec at the source size', () => {
    expect(plan.rungs.map((r) => `${r.id} ${r.widthPx}x${r.heightPx}`)).toEqual([
      'h264-180p 320x180',
      'hevc-180p 320x180',
      'av1-180p 320x180',
    ]);
  });

  it('encodes every rung in its codec at its planned size, HEVC under the hvc1 sample entry', async () => {
    for (const rung of plan.rungs) {
      const out = (await ffprobeJson([
        ...['-show_entries', 'stream=codec_type,codec_name,codec_tag_string,width,height,pix_fmt'],
        join(outDir, rung.id, 'index.m3u8'),
      ])) as { streams: Record<string, unknown>[] };
      expect(out.streams, rung.id).toEqual([
        {
          codec_type: 'video',
          codec_name: rung.codec,
          codec_tag_string: { h264: 'avc1', hevc: 'hvc1', av1: 'av01' }[rung.codec],
          width: rung.widthPx,
          height: rung.heightPx,
          pix_fmt: 'yuv420p',
        },
      ]);
    }
  });

  it('puts keyframes at the segment boundaries and nowhere else, identically in every rung', async () => {
    for (const rung of plan.rungs) {
      const times = await keyframeTimes(join(outDir, rung.id, 'index.m3u8'));
      expect(times, rung.id).toEqual({ all: CLIP_SEC * 30, keyframes: [0, 1] });
    }
  });

  it("keeps the keyframes at the forced instants when the encoders' own interval would place them elsewhere", async () => {
    // The planned GOP (30 frames) falls on the same instants as the forced keyframes, so the test
    // above would pass if an encoder ignored them. With every GOP at 45 frames, an encoder that
    // ignores them puts its second keyframe at 1.5 s (as libx265 without forced-idr and libsvtav1
    // without enable-force-key-frames did here).
    const longGop: LadderPlan = {
      ...plan,
      kind: 'video-only',
      audio: null,
      rungs: plan.rungs.map((rung) => ({ ...rung, gopFrames: 45 })),
    };
    const longGopDir = join(dir, 'long-gop');
    await encodeLadder(longGop, {
      input: source,
      outDir: longGopDir,
      sourceFrameRateFps: sourceFps,
      durationSec: CLIP_SEC,
      ...RUN,
    });
    for (const rung of longGop.rungs) {
      const times = await keyframeTimes(join(longGopDir, rung.id, 'index.m3u8'));
      expect(times.keyframes, rung.id).toEqual([0, 1]);
    }
  }, 120_000);

  it('starts every rung at presentation time 0 without an empty edit (browsers ignore those)', async () => {
    for (const rung of plan.rungs) {
      const out = (await ffprobeJson([
        ...['-select_streams', 'v:0', '-show_entries', 'packet=pts_time'],
        join(outDir, rung.id, 'index.m3u8'),
      ])) as { packets: { pts_time: string }[] };
      expect(Math.min(...out.packets.map((p) => Number(p.pts_time))), rung.id).toBe(0);
      const init = await readFile(join(outDir, rung.id, `init_${rung.id}.mp4`));
      const [elst] = boxes(init, ['moov', 'trak', 'edts', 'elst']);
      // elst: version, flags, entry count, then (duration, media_time) pairs; -1 marks an empty edit.
      const mediaTimes =
        elst === undefined
          ? []
          : Array.from({ length: elst.readUInt32BE(4) }, (_, i) =>
              elst[0] === 1 ? Number(elst.readBigInt64BE(8 + i * 20 + 8)) : elst.readInt32BE(8 + i * 12 + 4),
            );
      expect(mediaTimes, rung.id).not.toContain(-1);
    }
  });

  it('decodes every rung without an error', async () => {
    for (const rung of plan.rungs) {
      const { stderr } = await run(
        'ffmpeg',
        ['-hide_banner', '-v', 'error', '-i', join(outDir, rung.id, 'index.m3u8'), '-f', 'null', '-'],
        RUN,
      );
      expect(stderr, rung.id).toBe('');
    }
  });

  it('packages without findings and lists every variant with the CODECS its init segment carries', async () => {
    expect(packaged.findings).toEqual([]);
    const master = await readFile(packaged.masterPath, 'utf8');
    const declared = new Map(
      [...master.matchAll(/^#EXT-X-STREAM-INF:.*CODECS="([^"]+)".*\n(.+)$/gm)].map((m) => [m[2]!, m[1]!]),
    );
    const expected = new Map<string, string>();
    for (const rung of plan.rungs) {
      const init = await readFile(join(outDir, rung.id, `init_${rung.id}.mp4`));
      const video =
        rung.codec === 'hevc'
          ? hevcCodecs(sampleEntry(init, 'hvcC').type, sampleEntry(init, 'hvcC').config)
          : rung.codec === 'av1'
            ? av1Codecs(sampleEntry(init, 'av1C').config)
            : `avc1.${sampleEntry(init, 'avcC').config.subarray(1, 4).toString('hex')}`;
      expected.set(`${rung.id}/index.m3u8`, `${video},mp4a.40.2`);
    }
    expect(declared).toEqual(expected);
    // x265 Main at 320x180: level 2 (general_level_idc 60); SVT-AV1: level 2.0 (seq_level_idx 0).
    expect(declared.get('hevc-180p/index.m3u8')).toMatch(/^hvc1\.1\.6\.L\d+\.90,mp4a\.40\.2$/);
    expect(declared.get('av1-180p/index.m3u8')).toMatch(/^av01\.0\.\d\dM\.08,mp4a\.40\.2$/);
    expect(packaged.variants.map((v) => [v.id, v.codecs])).toEqual(
      plan.rungs.map((r) => [r.id, expected.get(`${r.id}/index.m3u8`)]),
    );
  });

  it('writes one DASH AdaptationSet per codec, and ffmpeg decodes the MPD without an error', async () => {
    const mpd = await readFile(packaged.mpdPath, 'utf8');
    const sets = [
      ...mpd.matchAll(/<AdaptationSet [^>]*contentType="(\w+)"[^>]*>([\s\S]*?)<\/AdaptationSet>/g),
    ];
    const summary = sets.map((set) =>
      [...set[2]!.matchAll(/<Representation id="([^"]+)"[^>]* codecs="([^"]+)"/g)]
        .map((m) => `${set[1]} ${m[1]} ${m[2]!.split('.')[0]}`)
        .join(' | '),
    );
    expect(summary).toEqual([
      'video h264-180p avc1',
      'video hevc-180p hvc1',
      'video av1-180p av01',
      'audio audio mp4a',
    ]);
    const { stderr } = await run(
      'ffmpeg',
      ['-hide_banner', '-v', 'error', '-i', packaged.mpdPath, '-map', '0', '-f', 'null', '-'],
      RUN,
    );
    expect(stderr).toBe('');
  });
});
