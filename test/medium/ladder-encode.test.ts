import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LADDER_SETTINGS, type LadderPlan, planLadder } from '../../src/domain/ladder.js';
import { run } from '../../src/media/ffmpeg.js';
import type { VideoProbe } from '../../src/media/ffprobe-parse.js';
import { encodeLadder, type LadderOutputLayout } from '../../src/media/ladder-encode.js';
import { ladderSourceFromProbe } from '../../src/media/ladder-source.js';
import { probeVideo } from '../../src/media/video-probe.js';
import { tempDir } from '../helpers/tmp.js';

// Real ffmpeg/ffprobe 5.1 on 4 s testsrc2 clips: one ladder encode each, then every acceptance check
// of issue 5 for a ladder read back with ffprobe. 854x480 is the smallest source that gets two
// rungs from the planner (480p and 360p; the planner has no rung below 360p, so a 640x360 source
// would get one), and the 60 fps video-only clip gives rungs of different frame rates (480p60,
// 360p30), where aligned keyframes are not a given.

const RUN = { timeoutMs: 120_000 };
const SEGMENT_SEC = 2;
const CLIP_SEC = 4;

let dir: string;
let cleanup: () => Promise<void>;

async function ffmpeg(...args: string[]): Promise<void> {
  await run('ffmpeg', ['-hide_banner', '-v', 'error', '-y', ...args], RUN);
}

async function ffprobeJson(args: string[]): Promise<Record<string, unknown>> {
  const { stdout } = await run('ffprobe', ['-v', 'error', '-of', 'json', ...args], RUN);
  return JSON.parse(stdout) as Record<string, unknown>;
}

interface Encoded {
  source: string;
  probe: VideoProbe;
  plan: LadderPlan;
  layout: LadderOutputLayout;
  outDir: string;
  progress: number[];
}

async function encodeClip(name: string, inputArgs: string[]): Promise<Encoded> {
  const source = join(dir, `${name}.mp4`);
  await ffmpeg(...inputArgs, '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', source);
  const probe = await probeVideo(source, RUN);
  const plan = planLadder(ladderSourceFromProbe(probe), {
    ...DEFAULT_LADDER_SETTINGS,
    segmentDurationSec: SEGMENT_SEC,
  });
  const outDir = join(dir, `${name}-out`);
  const progress: number[] = [];
  const layout = await encodeLadder(plan, {
    input: source,
    outDir,
    sourceFrameRateFps: probe.video?.variableFrameRate ? null : (probe.video?.frameRate ?? null),
    videoStreamIndex: probe.video?.index,
    audioStreamIndex: probe.audio?.index,
    durationSec: probe.durationSec,
    onProgress: (p) => progress.push(p),
    ...RUN,
  });
  return { source, probe, plan, layout, outDir, progress };
}

/** The files a media playlist references (EXT-X-MAP and segments) and its EXTINF durations. */
async function readPlaylist(
  path: string,
): Promise<{ init: string; segments: string[]; durations: number[] }> {
  const text = await readFile(path, 'utf8');
  const init = /#EXT-X-MAP:URI="([^"]+)"/.exec(text)?.[1];
  const durations = [...text.matchAll(/^#EXTINF:([\d.]+),/gm)].map((m) => Number(m[1]));
  const segments = text.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
  return {
    init: join(dirname(path), init ?? 'NO-EXT-X-MAP'),
    segments: segments.map((s) => join(dirname(path), s)),
    durations,
  };
}

async function keyframeTimes(playlist: string): Promise<number[]> {
  const out = await ffprobeJson([
    '-select_streams',
    'v:0',
    '-show_entries',
    'packet=pts_time,flags',
    playlist,
  ]);
  const packets = out.packets as { pts_time: string; flags: string }[];
  return packets.filter((p) => p.flags.startsWith('K')).map((p) => Number(p.pts_time));
}

/** First presentation time to the end of the last frame, from the packets. */
async function streamSpan(playlist: string, stream: string): Promise<number> {
  const out = await ffprobeJson([
    '-select_streams',
    stream,
    '-show_entries',
    'packet=pts_time,duration_time',
    playlist,
  ]);
  const packets = out.packets as { pts_time: string; duration_time?: string }[];
  const starts = packets.map((p) => Number(p.pts_time));
  // The AAC priming packet has no duration (N/A): it ends where the next begins.
  const ends = packets.map((p) => Number(p.pts_time) + (Number(p.duration_time) || 0));
  return Math.max(...ends) - Math.min(...starts);
}

/** The payloads of the boxes at `path` (e.g. `['moof', 'traf', 'tfdt']`) in an MP4 file or box body. */
function boxes(bytes: Buffer, path: readonly string[]): Buffer[] {
  const [type, ...rest] = path;
  const found: Buffer[] = [];
  for (let at = 0; at + 8 <= bytes.length; ) {
    let size = bytes.readUInt32BE(at);
    let header = 8;
    if (size === 1) {
      size = Number(bytes.readBigUInt64BE(at + 8));
      header = 16;
    } else if (size === 0) {
      size = bytes.length - at;
    }
    if (size < header) break;
    if (bytes.toString('latin1', at + 4, at + 8) === type) {
      const body = bytes.subarray(at + header, at + size);
      found.push(...(rest.length === 0 ? [body] : boxes(body, rest)));
    }
    at += size;
  }
  return found;
}

/** The entries of an init segment's edit list (`elst`), as [segment duration, media time]. */
function editList(init: Buffer): [number, number][] {
  const [elst] = boxes(init, ['moov', 'trak', 'edts', 'elst']);
  if (elst === undefined) return [];
  const version = elst[0];
  const entries: [number, number][] = [];
  for (let i = 0, at = 8; i < elst.readUInt32BE(4); i++, at += version === 1 ? 20 : 12) {
    entries.push(
      version === 1
        ? [Number(elst.readBigUInt64BE(at)), Number(elst.readBigInt64BE(at + 8))]
        : [elst.readUInt32BE(at), elst.readInt32BE(at + 4)],
    );
  }
  return entries;
}

/** A fragment's `tfdt` (baseMediaDecodeTime). */
function decodeTime(segment: Buffer): number {
  const [tfdt] = boxes(segment, ['moof', 'traf', 'tfdt']);
  if (tfdt === undefined) throw new Error('no moof/traf/tfdt');
  return tfdt[0] === 1 ? Number(tfdt.readBigUInt64BE(4)) : tfdt.readUInt32BE(4);
}

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('assetpipe-ladder-encode-'));
});

afterAll(async () => {
  await cleanup?.();
});

/**
 * A 4 s 854x480 clip with a hard cut at 1.5 s (testsrc2, then SMPTE bars): x264 would put a
 * scene-cut keyframe there and restart its GOP count, so aligned keyframes at 0 and 2 s in every
 * rung show that scene cuts are off and keyframes are forced by time.
 */
function clipArgs(rate: number, withAudio: boolean): string[] {
  const size = `size=854x480:rate=${rate}`;
  const video = [
    '-filter_complex',
    `testsrc2=${size}:duration=1.5[a];smptebars=${size}:duration=${CLIP_SEC - 1.5}[b];[a][b]concat=n=2:v=1:a=0[v]`,
    '-map',
    '[v]',
  ];
  if (!withAudio) return video;
  return [
    '-f',
    'lavfi',
    '-i',
    `sine=frequency=440:sample_rate=48000:duration=${CLIP_SEC}`,
    ...video,
    '-map',
    '0:a',
    '-c:a',
    'aac',
  ];
}

describe.each([
  {
    name: 'video-and-audio',
    input: clipArgs(30, true),
    rungs: ['h264-480p 854x480 30/1', 'h264-360p 640x360 30/1'],
  },
  {
    name: 'video-only-60fps',
    input: clipArgs(60, false),
    rungs: ['h264-480p 854x480 60/1', 'h264-360p 640x360 30/1'],
  },
])('encodeLadder: $name', ({ name, input, rungs }) => {
  let encoded: Encoded;

  beforeAll(async () => {
    encoded = await encodeClip(name, input);
  }, 120_000);

  it('plans the expected rungs (the premise of the checks below)', () => {
    expect(encoded.plan.rungs.map((r) => `${r.id} ${r.widthPx}x${r.heightPx} ${r.frameRate}`)).toEqual(rungs);
    expect(encoded.plan.kind).toBe(name === 'video-and-audio' ? 'video-and-audio' : 'video-only');
  });

  it('writes every rung with the planned codec, profile, size, frame rate and square pixels', async () => {
    for (const [i, rung] of encoded.plan.rungs.entries()) {
      const playlist = join(encoded.outDir, encoded.layout.rungs[i]!.playlist);
      const out = await ffprobeJson(['-show_entries', 'stream', playlist]);
      const streams = out.streams as Record<string, unknown>[];
      expect(streams).toHaveLength(1);
      expect(streams[0]).toMatchObject({
        codec_type: 'video',
        codec_name: 'h264',
        profile: 'High',
        pix_fmt: 'yuv420p',
        width: rung.widthPx,
        height: rung.heightPx,
        r_frame_rate: rung.frameRate,
        sample_aspect_ratio: '1:1',
      });
    }
  });

  it('puts keyframes at the same timestamps in every rung, one per segment, and nowhere else', async () => {
    const times = await Promise.all(
      encoded.layout.rungs.map((r) => keyframeTimes(join(encoded.outDir, r.playlist))),
    );
    const [first, ...others] = times;
    expect(first).toHaveLength(CLIP_SEC / SEGMENT_SEC);
    for (const other of others) expect(other).toEqual(first);
    const start = first![0]!;
    expect(first!.map((t) => Number((t - start).toFixed(3)))).toEqual([0, 2]);
  });

  it('lasts as long as the source, within one frame', async () => {
    for (const [i, rung] of encoded.plan.rungs.entries()) {
      const playlist = join(encoded.outDir, encoded.layout.rungs[i]!.playlist);
      const frame = 1 / rung.frameRateFps;
      expect(Math.abs((await streamSpan(playlist, 'v:0')) - CLIP_SEC)).toBeLessThanOrEqual(frame + 1e-6);
      const { durations } = await readPlaylist(playlist);
      expect(Math.abs(durations.reduce((a, b) => a + b, 0) - CLIP_SEC)).toBeLessThanOrEqual(frame + 1e-6);
    }
  });

  it('decodes every rung without a single error', async () => {
    for (const r of encoded.layout.rungs) {
      const { stderr } = await run(
        'ffmpeg',
        ['-hide_banner', '-v', 'error', '-i', join(encoded.outDir, r.playlist), '-f', 'null', '-'],
        RUN,
      );
      expect(stderr).toBe('');
    }
  });

  it('writes the init segment and every segment each media playlist lists, none empty', async () => {
    const renditions = [...encoded.layout.rungs, ...(encoded.layout.audio ? [encoded.layout.audio] : [])];
    for (const r of renditions) {
      const { init, segments, durations } = await readPlaylist(join(encoded.outDir, r.playlist));
      expect(segments.length).toBeGreaterThanOrEqual(CLIP_SEC / SEGMENT_SEC);
      expect(segments).toHaveLength(durations.length);
      for (const file of [init, ...segments]) expect((await stat(file)).size).toBeGreaterThan(0);
      const text = await readFile(join(encoded.outDir, r.playlist), 'utf8');
      expect(text).toContain('#EXT-X-PLAYLIST-TYPE:VOD');
      expect(text).toContain('#EXT-X-ENDLIST');
    }
  });

  it('starts every rendition at presentation time 0, with no empty edit (browsers ignore those)', async () => {
    const renditions = [...encoded.layout.rungs, ...(encoded.layout.audio ? [encoded.layout.audio] : [])];
    for (const r of renditions) {
      const playlist = join(encoded.outDir, r.playlist);
      const { init, segments } = await readPlaylist(playlist);
      // An empty edit (media time -1) delays the track; Chromium skips it. The video's one edit
      // skips x264's B-frame delay (its media time), which Chromium applies; the audio's, if any,
      // is the identity.
      const edits = editList(await readFile(init));
      expect(
        edits.filter(([, mediaTime]) => mediaTime < 0),
        `${r.name} empty edits`,
      ).toEqual([]);
      expect(edits.length, `${r.name} edits`).toBeLessThanOrEqual(1);
      if (r.name === 'audio') expect(edits.every(([, mediaTime]) => mediaTime === 0)).toBe(true);
      expect(decodeTime(await readFile(segments[0]!)), `${r.name} tfdt`).toBe(0);
      // ffmpeg, which applies every edit, reads the first frame at 0 as well.
      const out = await ffprobeJson([
        '-show_entries',
        'packet=pts_time',
        '-read_intervals',
        '%+#8',
        playlist,
      ]);
      const pts = (out.packets as { pts_time: string }[]).map((p) => Number(p.pts_time));
      expect(Math.min(...pts), `${r.name} first pts`).toBe(0);
    }
  });

  it('encodes the audio once, as AAC-LC stereo in its own rendition', async () => {
    if (encoded.plan.audio === null) {
      expect(encoded.layout.audio).toBeNull();
      return;
    }
    const playlist = join(encoded.outDir, encoded.layout.audio!.playlist);
    const out = await ffprobeJson(['-show_entries', 'stream', playlist]);
    expect(out.streams).toEqual([
      expect.objectContaining({ codec_type: 'audio', codec_name: 'aac', profile: 'LC', channels: 2 }),
    ]);
    // AAC frames are 1024 samples (21 ms at 48 kHz); the encoder's priming adds one more.
    expect(Math.abs((await streamSpan(playlist, 'a:0')) - CLIP_SEC)).toBeLessThan(0.05);
    const { stderr } = await run(
      'ffmpeg',
      ['-hide_banner', '-v', 'error', '-i', playlist, '-f', 'null', '-'],
      RUN,
    );
    expect(stderr).toBe('');
  });

  it('reports progress in increasing whole per cents up to 100', () => {
    const { progress } = encoded;
    expect(progress.at(-1)).toBe(100);
    expect(progress.every((p, i) => i === 0 || p > progress[i - 1]!)).toBe(true);
  });
});
