import { copyFile, mkdir, readdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Chunk, planChunks } from '../../src/domain/chunks.js';
import { DEFAULT_LADDER_SETTINGS, type LadderPlan, planLadder, type Rung } from '../../src/domain/ladder.js';
import {
  chunkEncodeArgs,
  chunkFileName,
  encodeChunk,
  joinChunks,
  rungChunkFrames,
} from '../../src/media/chunk-encode.js';
import { run } from '../../src/media/ffmpeg.js';
import { encodeLadder, type LadderOutputLayout } from '../../src/media/ladder-encode.js';
import { ladderSourceFromProbe } from '../../src/media/ladder-source.js';
import { type PackagedLadder, packageLadder } from '../../src/media/package-ladder.js';
import { probeVideo } from '../../src/media/video-probe.js';
import { tempDir } from '../helpers/tmp.js';

// Real ffmpeg/ffprobe 5.1 on 9 s testsrc2 clips (854x480: the smallest source the planner gives two
// rungs): the same plan encoded in one piece (encodeLadder) and in three 3 s chunks (encodeChunk,
// one after another) joined by joinChunks, with 1 s segments. The joined package must be the
// one-piece encode's in structure: same frames at the same times, same keyframes, same start.
// The clips: 25 fps (boundaries fall on frames); 30000/1001 (they do not: a segment is 29.97
// frames); 60 fps video-only (480p60 + a halved 360p30 rung, and a join with no audio input); and a
// variable-rate clip (every 4th frame of 30 fps dropped, the rest jittered by up to 8 ms), which the
// planner makes constant at 23 fps with an fps filter in every rung.

const RUN = { timeoutMs: 180_000 };
const SEGMENT_SEC = 1;
const CHUNK_SEC = 3;
const CLIP_SEC = 9;
const SETTINGS = { ...DEFAULT_LADDER_SETTINGS, segmentDurationSec: SEGMENT_SEC, minTotalBitrateBps: 228_000 };

let dir: string;
let cleanup: (() => Promise<void>) | undefined;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('assetpipe-chunk-encode-'));
});

afterAll(async () => {
  await cleanup?.();
});

async function ffprobeJson(args: string[]): Promise<Record<string, unknown>> {
  const { stdout } = await run('ffprobe', ['-v', 'error', '-of', 'json', ...args], RUN);
  return JSON.parse(stdout) as Record<string, unknown>;
}

interface Packet {
  pts: number;
  dts: number;
  duration: number;
  key: boolean;
}

/** The video packets of a media playlist (or file), in the track's own ticks and in seconds. */
async function videoPackets(path: string): Promise<{ packets: Packet[]; timeBase: number; times: string[] }> {
  const out = await ffprobeJson([
    '-select_streams',
    'v:0',
    '-show_entries',
    'stream=time_base:packet=pts,dts,duration,pts_time,flags',
    path,
  ]);
  const [num, den] = ((out.streams as { time_base: string }[])[0]!.time_base ?? '').split('/').map(Number);
  const raw = out.packets as {
    pts: number;
    dts: number;
    duration: number;
    pts_time: string;
    flags: string;
  }[];
  return {
    packets: raw.map((p) => ({ pts: p.pts, dts: p.dts, duration: p.duration, key: p.flags.startsWith('K') })),
    timeBase: num! / den!,
    times: raw.filter((p) => p.flags.startsWith('K')).map((p) => p.pts_time),
  };
}

/** The payloads of the boxes at `path` (e.g. `['moov', 'trak', 'edts', 'elst']`) in MP4 bytes. */
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

/** The init segment a media playlist names (EXT-X-MAP). */
async function initSegment(playlist: string): Promise<Buffer> {
  const uri = /#EXT-X-MAP:URI="([^"]+)"/.exec(await readFile(playlist, 'utf8'))?.[1];
  return readFile(join(dirname(playlist), uri ?? 'NO-EXT-X-MAP'));
}

interface Clip {
  name: string;
  /** ffmpeg arguments that write the source (output file appended). */
  make: string[];
  rungs: string[];
}

const audio = ['-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:duration=${CLIP_SEC}`];
const x264 = ['-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p'];
const testsrc = (rate: string) => [
  '-f',
  'lavfi',
  '-i',
  `testsrc2=size=854x480:rate=${rate}:duration=${CLIP_SEC}`,
];

const CLIPS: Clip[] = [
  {
    name: '25fps',
    make: [...testsrc('25'), ...audio, '-map', '0:v', '-map', '1:a', ...x264, '-c:a', 'aac'],
    rungs: ['h264-480p 25/1', 'h264-360p 25/1'],
  },
  {
    name: 'ntsc',
    make: [...testsrc('30000/1001'), ...audio, '-map', '0:v', '-map', '1:a', ...x264, '-c:a', 'aac'],
    rungs: ['h264-480p 30000/1001', 'h264-360p 30000/1001'],
  },
  {
    name: '60fps-video-only',
    make: [...testsrc('60'), ...x264],
    rungs: ['h264-480p 60/1', 'h264-360p 30/1'],
  },
  {
    name: 'vfr',
    make: [
      ...testsrc('30'),
      ...audio,
      '-filter_complex',
      // Timestamps in 1/90000 so the jitter (whole ticks, up to +-4 ms around +4 ms) survives.
      "[0:v]settb=1/90000,select='not(eq(mod(n\\,4)\\,3))',setpts='PTS+360+trunc(360*sin(N))'[v]",
      '-map',
      '[v]',
      '-map',
      '1:a',
      // As the frames come: no constant-rate sync, the encoder's time base as fine as the jitter.
      '-fps_mode:v',
      'passthrough',
      '-enc_time_base:v',
      '1/90000',
      '-video_track_timescale',
      '90000',
      ...x264,
      '-c:a',
      'aac',
    ],
    rungs: ['h264-480p 23/1', 'h264-360p 23/1'],
  },
];

describe.each(CLIPS)('encodeChunk + joinChunks vs encodeLadder: $name', (clip) => {
  let source: string;
  let plan: LadderPlan;
  let chunks: Chunk[];
  let one: { outDir: string; layout: LadderOutputLayout };
  let joined: { outDir: string; layout: LadderOutputLayout; packaged: PackagedLadder };
  let sourceVideoEndSec: number;
  const chunkProgress: number[][] = [];

  beforeAll(async () => {
    source = join(dir, `${clip.name}.mp4`);
    await run('ffmpeg', ['-hide_banner', '-v', 'error', '-y', ...clip.make, source], RUN);
    const probe = await probeVideo(source, RUN);
    const video = (
      await ffprobeJson(['-select_streams', 'v:0', '-show_entries', 'stream=start_time,duration', source])
    ).streams as { start_time: string; duration: string }[];
    sourceVideoEndSec = Number(video[0]!.start_time) + Number(video[0]!.duration);
    plan = planLadder(ladderSourceFromProbe(probe), SETTINGS);
    const common = {
      input: source,
      sourceFrameRateFps: probe.video?.variableFrameRate ? null : (probe.video?.frameRate ?? null),
      ...(probe.video ? { videoStreamIndex: probe.video.index } : {}),
      ...RUN,
    };
    const audioIndex = probe.audio ? { audioStreamIndex: probe.audio.index } : {};

    let started = performance.now();
    const oneDir = join(dir, `${clip.name}-one`);
    one = {
      outDir: oneDir,
      layout: await encodeLadder(plan, {
        ...common,
        ...audioIndex,
        outDir: oneDir,
        durationSec: probe.durationSec,
      }),
    };
    const onePieceMs = performance.now() - started;

    chunks = planChunks(probe.durationSec!, CHUNK_SEC, SEGMENT_SEC);
    started = performance.now();
    const chunkDirs: string[] = [];
    for (const chunk of chunks) {
      const progress: number[] = [];
      const chunkDir = join(dir, `${clip.name}-chunk${chunk.index}`);
      await encodeChunk(plan, { ...common, outDir: chunkDir, chunk, onProgress: (p) => progress.push(p) });
      chunkDirs.push(chunkDir);
      chunkProgress.push(progress);
    }
    const chunksMs = performance.now() - started;
    started = performance.now();
    const joinDir = join(dir, `${clip.name}-joined`);
    const layout = await joinChunks(plan, {
      ...common,
      ...audioIndex,
      chunkDirs,
      outDir: joinDir,
      durationSec: probe.durationSec,
    });
    const joinMs = performance.now() - started;
    const packaged = await packageLadder({
      plan,
      layout,
      outDir: joinDir,
      expectedDurationSec: probe.durationSec!,
      ...RUN,
    });
    joined = { outDir: joinDir, layout, packaged };
    // Reported, not asserted: the machine is shared, wall times say little on their own.
    console.log(
      `${clip.name}: one-piece ${(onePieceMs / 1000).toFixed(1)} s; ${chunks.length} chunks one after another ${(chunksMs / 1000).toFixed(1)} s + join ${(joinMs / 1000).toFixed(1)} s`,
    );
  }, 600_000);

  const rungPlaylists = (which: { outDir: string; layout: LadderOutputLayout }) =>
    which.layout.rungs.map((r) => join(which.outDir, r.playlist));

  it('plans the expected rungs and three chunks (the premise of the checks below)', () => {
    expect(plan.rungs.map((r) => `${r.id} ${r.frameRate}`)).toEqual(clip.rungs);
    expect(chunks.map((c) => c.startSec)).toEqual([0, 3, 6]);
  });

  it("writes the one-piece encode's files, and the same media playlists for the rungs", async () => {
    // packageLadder adds the two manifests to the joined package.
    const files = async (root: string) =>
      (await readdir(root, { recursive: true }))
        .filter((f) => !['master.m3u8', 'manifest.mpd'].includes(f))
        .sort();
    expect(await files(joined.outDir)).toEqual(await files(one.outDir));
    expect(joined.layout.rungs.map((r) => r.playlist)).toEqual(one.layout.rungs.map((r) => r.playlist));
    for (const [i, playlist] of rungPlaylists(joined).entries()) {
      expect(await readFile(playlist, 'utf8')).toBe(await readFile(rungPlaylists(one)[i]!, 'utf8'));
    }
  });

  it('decodes every joined rung without a single error', async () => {
    for (const playlist of rungPlaylists(joined)) {
      const { stderr } = await run(
        'ffmpeg',
        ['-hide_banner', '-v', 'error', '-i', playlist, '-f', 'null', '-'],
        RUN,
      );
      expect(stderr, playlist).toBe('');
    }
  });

  it("puts every joined rung's keyframes where the one-piece encode has them, the same in every rung", async () => {
    const joinedTimes = await Promise.all(
      rungPlaylists(joined).map(async (p) => (await videoPackets(p)).times),
    );
    const oneTimes = await Promise.all(rungPlaylists(one).map(async (p) => (await videoPackets(p)).times));
    expect(joinedTimes).toEqual(oneTimes);
    for (const times of joinedTimes) expect(times).toEqual(joinedTimes[0]);
    // One per segment of the 9 s clip: the chunk boundaries (3 s, 6 s) are among them.
    expect(joinedTimes[0]).toHaveLength(CLIP_SEC / SEGMENT_SEC);
  });

  it("has the one-piece encode's frames, at the same presentation times, with no gap or overlap", async () => {
    for (const [i, playlist] of rungPlaylists(joined).entries()) {
      const got = await videoPackets(playlist);
      const want = await videoPackets(rungPlaylists(one)[i]!);
      expect(got.timeBase).toBe(want.timeBase);
      expect(got.packets).toHaveLength(want.packets.length);
      const starts = got.packets.map((p) => p.pts).sort((a, b) => a - b);
      expect(starts).toEqual(want.packets.map((p) => p.pts).sort((a, b) => a - b));
      // Constant rate: every frame starts where the one before it ends, across the joints too.
      const step = got.packets[0]!.duration;
      expect(starts.every((pts, j) => pts === starts[0]! + j * step)).toBe(true);
      // Decode times rise one frame at a time through the joints: no chunk's B-frame delay overlaps
      // the chunk before it.
      expect(got.packets.every((p, j) => j === 0 || p.dts === got.packets[j - 1]!.dts + step)).toBe(true);
    }
  });

  it('lasts as long as the source video, within one frame', async () => {
    for (const [i, playlist] of rungPlaylists(joined).entries()) {
      const { packets, timeBase } = await videoPackets(playlist);
      const starts = packets.map((p) => p.pts);
      const spanSec = (Math.max(...packets.map((p) => p.pts + p.duration)) - Math.min(...starts)) * timeBase;
      expect(Math.abs(spanSec - sourceVideoEndSec), playlist).toBeLessThanOrEqual(
        1 / plan.rungs[i]!.frameRateFps + 1e-6,
      );
    }
  });

  it("starts at presentation time 0 with the one-piece encode's edit list", async () => {
    for (const [i, playlist] of rungPlaylists(joined).entries()) {
      const first = await ffprobeJson([
        '-show_entries',
        'packet=pts_time',
        '-read_intervals',
        '%+#8',
        playlist,
      ]);
      expect(Math.min(...(first.packets as { pts_time: string }[]).map((p) => Number(p.pts_time)))).toBe(0);
      // The B-frame delay as the one edit (media time = the delay), which browsers apply.
      const elst = boxes(await initSegment(playlist), ['moov', 'trak', 'edts', 'elst']);
      const oneElst = boxes(await initSegment(rungPlaylists(one)[i]!), ['moov', 'trak', 'edts', 'elst']);
      expect(elst).toHaveLength(1);
      expect(elst[0]!.toString('hex')).toBe(oneElst[0]!.toString('hex'));
    }
  });

  it('packages without a finding', () => {
    expect(joined.packaged.findings).toEqual([]);
  });

  it("encodes the audio once, from the whole source: the one-piece encode's audio packets", async () => {
    expect(joined.layout.audio === null).toBe(plan.audio === null);
    if (one.layout.audio === null || joined.layout.audio === null) return;
    const packets = async (playlist: string) =>
      (await ffprobeJson(['-show_entries', 'packet=pts,dts,duration', playlist])).packets;
    expect(await packets(join(joined.outDir, joined.layout.audio.playlist))).toEqual(
      await packets(join(one.outDir, one.layout.audio.playlist)),
    );
  });

  it('reports each chunk in increasing whole per cents up to 100', () => {
    expect(chunkProgress).toHaveLength(chunks.length);
    for (const progress of chunkProgress) {
      expect(progress.at(-1)).toBe(100);
      expect(progress.every((p, i) => i === 0 || p > progress[i - 1]!)).toBe(true);
    }
  });
});

describe('a chunk far into a 30000/1001 source', () => {
  // ffmpeg counts `t` from a chunk's first frame, 3.003 s - 3 s = 3 ms after its start here; past 30 s
  // that offset reaches the distance between a second and the frame after it (34 s: frame 1019 at
  // 34.0006 s), and a chunk forcing gte(t,n_forced) would key frame 1020 (34.034 s) instead.
  it("keys the frames the one-piece encode keys, 33 s in (after ffmpeg's `t` would drift)", async () => {
    const source = join(dir, 'ntsc-36s.mp4');
    const clip = ['-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=30000/1001:duration=36'];
    await run(
      'ffmpeg',
      ['-hide_banner', '-v', 'error', '-y', ...clip, '-c:v', 'libx264', '-preset', 'ultrafast', source],
      RUN,
    );
    const probe = await probeVideo(source, RUN);
    const plan = planLadder(ladderSourceFromProbe(probe), SETTINGS);
    const common = { input: source, sourceFrameRateFps: probe.video!.frameRate, ...RUN };
    const layout = await encodeLadder(plan, {
      ...common,
      outDir: join(dir, 'ntsc-36s-one'),
      durationSec: 36,
    });
    const chunk = { index: 11, startSec: 33, durationSec: 3 };
    const [file] = await encodeChunk(plan, { ...common, outDir: join(dir, 'ntsc-36s-chunk'), chunk });

    const one = await videoPackets(join(dir, 'ntsc-36s-one', layout.rungs[0]!.playlist));
    const got = await videoPackets(file!.path);
    expect(got.timeBase).toBe(one.timeBase);
    const { first } = rungChunkFrames(plan.rungs[0]!, chunk, SEGMENT_SEC);
    const offset = first * got.packets[0]!.duration;
    const keys = (packets: Packet[], shift: number) => packets.filter((p) => p.key).map((p) => p.pts + shift);
    const oneKeys = keys(one.packets, 0).filter((pts) => pts >= offset);
    // Frames 990 (33.033 s), 1019 (34.0006 s), 1049 (35.0016 s) at 1001 ticks of 1/30000 s each.
    expect(oneKeys).toEqual([990, 1019, 1049].map((frame) => frame * 1001));
    expect(keys(got.packets, offset)).toEqual(oneKeys);
  }, 120_000);
});

describe('joinChunks refuses chunks that cannot be joined', () => {
  const plan = planLadder(
    {
      durationSec: 2,
      video: {
        widthPx: 854,
        heightPx: 480,
        frameRateFps: 25,
        variableFrameRate: false,
        dynamicRange: 'sdr',
        bitDepth: 8,
      },
      audio: null,
    },
    SETTINGS,
  );
  let source: string;
  let chunkDirs: string[];

  beforeAll(async () => {
    source = join(dir, 'refuse.mp4');
    const clip = ['-f', 'lavfi', '-i', 'testsrc2=size=854x480:rate=25:duration=2'];
    await run('ffmpeg', ['-hide_banner', '-v', 'error', '-y', ...clip, ...x264, source], RUN);
    chunkDirs = [];
    for (const chunk of planChunks(2, 1, SEGMENT_SEC)) {
      const chunkDir = join(dir, `refuse-chunk${chunk.index}`);
      await encodeChunk(plan, { input: source, outDir: chunkDir, chunk, sourceFrameRateFps: 25, ...RUN });
      chunkDirs.push(chunkDir);
    }
  }, 120_000);

  it('names a missing chunk file', async () => {
    const empty = join(dir, 'refuse-empty');
    await mkdir(empty, { recursive: true });
    await expect(
      joinChunks(plan, {
        input: source,
        chunkDirs: [chunkDirs[0]!, empty],
        outDir: join(dir, 'refuse-out1'),
        durationSec: 2,
        ...RUN,
      }),
    ).rejects.toThrow(`chunk file ${join(empty, chunkFileName(plan.rungs[0]!.id))} is missing`);
  });

  it("refuses a chunk whose stream is not the rung's (another size, other parameter sets)", async () => {
    const [top, small] = plan.rungs;
    const mixed = join(dir, 'refuse-mixed');
    await mkdir(mixed, { recursive: true });
    await copyFile(join(chunkDirs[1]!, chunkFileName(small!.id)), join(mixed, chunkFileName(top!.id)));
    await copyFile(join(chunkDirs[1]!, chunkFileName(small!.id)), join(mixed, chunkFileName(small!.id)));
    await expect(
      joinChunks(plan, {
        input: source,
        chunkDirs: [chunkDirs[0]!, mixed],
        outDir: join(dir, 'refuse-out2'),
        durationSec: 2,
        ...RUN,
      }),
    ).rejects.toThrow(/cannot be joined to .*: its .*width, height.* differ/);
  });
});

describe('rungChunkFrames and chunkEncodeArgs', () => {
  const rung = (frameRate: string): Rung => {
    const [num, den] = frameRate.split('/').map(Number);
    return { id: 'h264-480p', frameRate, frameRateFps: num! / den! } as Rung;
  };
  const chunk = (index: number, startSec: number, durationSec: number): Chunk => ({
    index,
    startSec,
    durationSec,
  });

  it.each<[string, Chunk, number, [number, number, number]]>([
    // 25 fps: boundaries are frames 75, 150.
    ['25/1', chunk(1, 3, 3), 1, [75, 150, 3]],
    // 30000/1001: the first frame at or after 3 s is frame 90 (3.003 s); after 6 s, 180 (6.006 s).
    ['30000/1001', chunk(1, 3, 3), 1, [90, 180, 3]],
    // The last chunk ends at the source's end, not on a segment: 9.009 s at 29.97 fps is frame 270.
    ['30000/1001', chunk(2, 6, 3.009), 1, [180, 270, 6]],
    // A halved rung: 30 fps of a 60 fps source, 2 s segments, the second 60 s chunk.
    ['30/1', chunk(1, 60, 60), 2, [1800, 3600, 30]],
    // 31 s at 29.97 fps is frame 929.07: the keyframe is 930 (the one-piece's gte), not 929.
    ['30000/1001', chunk(1, 31, 31), 1, [930, 1859, 31]],
  ])(
    '%s, chunk %o, %d s segments: frames and segments before',
    (frameRate, c, seg, [first, end, segmentsBefore]) => {
      expect(rungChunkFrames(rung(frameRate), c, seg)).toEqual({ first, end, segmentsBefore });
    },
  );

  it('refuses a chunk that does not start on a segment boundary', () => {
    expect(() => rungChunkFrames(rung('25/1'), chunk(1, 2.5, 3), 1)).toThrow(RangeError);
    expect(() => rungChunkFrames(rung('25/1'), chunk(1, 4, 6), 6)).toThrow(/multiple of the 6 s segment/);
  });

  it('seeks a second ahead, puts the frames back on the source timeline, cuts by frame numbers', () => {
    const plan = planLadder(
      {
        durationSec: 9,
        video: {
          widthPx: 854,
          heightPx: 480,
          frameRateFps: 25,
          variableFrameRate: false,
          dynamicRange: 'sdr',
          bitDepth: 8,
        },
        audio: { channels: 2 },
      },
      SETTINGS,
    );
    const args = chunkEncodeArgs(plan, {
      input: '/src/in.mov',
      outDir: '/chunks/1',
      chunk: chunk(1, 3, 3),
      sourceFrameRateFps: 25,
      timeoutMs: 1,
    });
    expect(args.slice(args.indexOf('-noaccurate_seek'), args.indexOf('-i') + 2)).toEqual([
      '-noaccurate_seek',
      '-ss',
      '2',
      '-i',
      'file:/src/in.mov',
    ]);
    expect(args[args.indexOf('-filter_complex') + 1]).toBe(
      '[0:v:0]setpts=PTS+2/TB,split=2[s0][s1];' +
        '[s0]fps=25/1,trim=start_pts=75:end_pts=150,setpts=PTS-75,scale=854:480,setsar=1[v0];' +
        '[s1]fps=25/1,trim=start_pts=75:end_pts=150,setpts=PTS-75,scale=640:360,setsar=1[v1]',
    );
    expect(args.filter((a) => a.startsWith('expr:'))).toEqual([
      'expr:gte((round(t/0.04)+75)*0.04,(n_forced+3)*1)',
      'expr:gte((round(t/0.04)+75)*0.04,(n_forced+3)*1)',
    ]);
    expect(args.filter((a) => a.startsWith('file:/chunks'))).toEqual([
      `file:/chunks/1/${chunkFileName('h264-480p')}`,
      `file:/chunks/1/${chunkFileName('h264-360p')}`,
    ]);
    // No audio in a chunk: it is encoded once, by the join.
    expect(args).not.toContain('-c:a');
  });

  it('leaves the first chunk unseeked and uncut at its start, like the one-piece encode', () => {
    const plan = planLadder(
      {
        durationSec: 9,
        video: {
          widthPx: 640,
          heightPx: 360,
          frameRateFps: 25,
          variableFrameRate: false,
          dynamicRange: 'sdr',
          bitDepth: 8,
        },
        audio: null,
      },
      SETTINGS,
    );
    const args = chunkEncodeArgs(plan, {
      input: '/in.mp4',
      outDir: '/c0',
      chunk: chunk(0, 0, 3),
      sourceFrameRateFps: 25,
      timeoutMs: 1,
    });
    expect(args).not.toContain('-ss');
    expect(args[args.indexOf('-filter_complex') + 1]).toBe(
      '[0:v:0]fps=25/1,trim=end_pts=75,scale=640:360,setsar=1[v0]',
    );
  });
});
