import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type Chunk, concatList } from '../domain/chunks.js';
import type { LadderPlan, Rung } from '../domain/ladder.js';
import { run } from './ffmpeg.js';
import {
  audioEncodeArgs,
  ffmpegCommonArgs,
  forcedKeyframeArgs,
  hlsOutputArgs,
  type LadderOutputLayout,
  ladderOutputLayout,
  rungEncoderArgs,
  runWithProgress,
  videoFilterGraph,
  type X264Preset,
} from './ladder-encode.js';

// Chunked encoding: each chunk of the source (domain/chunks.ts) is encoded on its own, video only,
// into one MP4 per rung; the join then copies the rungs' chunks end to end (concat demuxer, no
// re-encode), encodes the audio once from the whole source, and writes what `encodeLadder` writes,
// with the same hls muxer arguments (ladder-encode.ts). Measured here (ffmpeg 5.1, 9 s clips at 25,
// 30000/1001, 60 and 60000/1001 fps and a variable-rate one, 3 s chunks, 1 s segments): every joined
// rung had the one-piece encode's packets (pts, dts, duration, keyframe flag, one for one) and edit
// list, and decoded without an error; test/medium/chunk-encode.test.ts keeps checking that.
//
// What makes a chunk join as if it had never been cut:
//   - Every rung of a chunk runs through `fps` at its own rate, so its frames sit on that rate's
//     grid of the SOURCE timeline (the decoded frames are put back there with `setpts=PTS+<seek>`).
//     The chunk is then cut on that grid (`trim=start_pts:end_pts`, in frames): from K0, the first
//     frame at or after the chunk's start, to K1, the next chunk's K0. The chunks share out the
//     frames with no gap and no overlap, and a rung at half the source's rate, or at 30000/1001
//     where a segment is not a whole number of frames, keeps the one-piece encode's grid. For a
//     constant-rate source, `fps` at the source's own rate passes every frame through as it is (the
//     one-piece encode leaves it out); a variable-rate source gets it in both.
//   - The fps filter picks each output frame from the source frames around it, so the decoding
//     starts before the chunk: the input is seeked to a keyframe at least PREROLL_SEC earlier
//     (`-noaccurate_seek`: ffmpeg keeps the frames from that keyframe on, the trim drops them after
//     the fps filter has seen them).
//   - `setpts=PTS-K0` then starts the chunk at 0: x264's B-frame delay gives its MP4 the one edit
//     (media time = the delay) the one-piece encode's init segments have, its frames continue the
//     previous chunk's decode timestamps, and the concat demuxer places each file at the sum of the
//     durations before it (no `-output_ts_offset`: NOTES.md, it doubled the duration).
//   - Keyframes: ffmpeg evaluates `-force_key_frames expr:` with `t` counted from the encoder's
//     first frame, i.e. from the chunk. The chunk's expression adds K0 frames and K0's segment back,
//     computed exactly as the one-piece encode computes `gte(t,n_forced*seg)` (double arithmetic on
//     frame number × 1/rate), so a boundary lands on the same frame in both.
// Container: MP4. It keeps the encoder's time base (1/12800 for 25 fps, 1/30000 for 30000/1001), the
// hls muxer's fMP4 takes it over as its timescale as in the one-piece encode, and its edit list
// carries the B-frame delay the way the init segments do. Tried on the same chunks here: Matroska
// rounds timestamps to 1 ms, so the joined rungs' pts and dts were off the one-piece encode's by up
// to half a millisecond (and decode times by 11 ticks at the start); MPEG-TS (90 kHz) joined with
// the one-piece encode's timestamps at 30000/1001, 60000/1001 and 23 fps too, but carries the
// parameter sets in the stream instead of in one place, where the join compares them.

/** The seconds decoded before a chunk's start (rounded down to whole seconds), for the fps filter. */
const PREROLL_SEC = 1;
const CHUNK_EXTENSION = '.mp4';

export interface ChunkEncodeOptions {
  /** The source file. */
  input: string;
  /** This chunk's own directory (created). */
  outDir: string;
  /** Which part of the source (from `planChunks`; its start is a multiple of the segment duration). */
  chunk: Chunk;
  /**
   * As `LadderEncodeOptions.sourceFrameRateFps`. It does not change a chunk's command: every rung
   * of a chunk gets an `fps` filter (see the top of this file), which is what the one-piece encode
   * does for a variable-rate source and changes no frame of a source whose timestamps already sit
   * on the rung's rate. (A "constant" source whose average rate is off its base rate by less than
   * the probe's 1 % tolerance is encoded at the plan's rate here, at ffmpeg's base rate in one piece.)
   */
  sourceFrameRateFps: number | null;
  /**
   * ffprobe's index of the video stream to encode.
   * @default the first video stream
   */
  videoStreamIndex?: number;
  /**
   * Encoder preset of every rung, as for `encodeLadder`.
   * @default 'veryfast'
   */
  preset?: X264Preset;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Whole per cents of this chunk, increasing, each at most once; 100 when ffmpeg finishes. */
  onProgress?: (percent: number) => void;
}

/** Where one rung's frames of a chunk are on that rung's frame grid of the whole source. */
export interface RungChunkFrames {
  /** Frame number (from the source's start) of the chunk's first frame: a forced keyframe. */
  first: number;
  /** Frame number of the first frame after the chunk (the next chunk's `first`). */
  end: number;
  /** How many segment boundaries precede the chunk's start (the one-piece encode's `n_forced`). */
  segmentsBefore: number;
}

/** The file name of a rung's chunk inside a chunk directory. Pure. */
export function chunkFileName(rungId: string): string {
  return `${rungId}${CHUNK_EXTENSION}`;
}

/**
 * The frames of `rung` that `chunk` holds. A boundary lands on the frame the one-piece encode's
 * `gte(t,n_forced*seg)` forces there: the first frame number k with k × (1/rate) >= boundary, in
 * the same double arithmetic ffmpeg evaluates it in. Pure. Throws a RangeError for a chunk whose
 * start is not a multiple of `segmentSec` or that holds no frame of the rung.
 */
export function rungChunkFrames(rung: Rung, chunk: Chunk, segmentSec: number): RungChunkFrames {
  const segmentsBefore = wholeSegments(chunk.startSec, segmentSec);
  if (segmentsBefore === null || !(chunk.durationSec > 0)) {
    throw new RangeError(
      `chunk ${chunk.index} must start on a multiple of the ${segmentSec} s segment and last longer than 0 s; got ${chunk.startSec} s + ${chunk.durationSec} s`,
    );
  }
  const endSec = chunk.startSec + chunk.durationSec;
  // Inside the source the end is the next chunk's start, so both reach the same frame through the
  // same product; the last chunk's end (the source's duration) need not be a segment boundary.
  const segmentsToEnd = wholeSegments(endSec, segmentSec);
  const frameSec = frameDurationSec(rung);
  const first = firstFrameAtOrAfter(segmentsBefore * segmentSec, frameSec);
  const end = firstFrameAtOrAfter(segmentsToEnd === null ? endSec : segmentsToEnd * segmentSec, frameSec);
  if (end <= first) {
    throw new RangeError(`chunk ${chunk.index} holds no frame of ${rung.id} at ${rung.frameRate} fps`);
  }
  return { first, end, segmentsBefore };
}

/**
 * The ffmpeg arguments that encode `chunk` of `options.input` into one MP4 per rung (video only) in
 * `options.outDir`, with `-progress pipe:1` on stdout. Pure. Throws as {@link rungChunkFrames}
 * does, and an Error for a plan without video rungs.
 */
export function chunkEncodeArgs(plan: LadderPlan, options: ChunkEncodeOptions): string[] {
  if (plan.rungs.length === 0) {
    throw new Error('the ladder plan has no video rungs: there is nothing to encode in chunks');
  }
  const seg = plan.segmentDurationSec;
  const frames = plan.rungs.map((rung) => rungChunkFrames(rung, options.chunk, seg));
  const seekSec = Math.max(0, Math.floor(options.chunk.startSec - PREROLL_SEC));
  const args = [...ffmpegCommonArgs()];
  if (seekSec > 0) {
    // Input seeking to the keyframe at or before seekSec; -noaccurate_seek keeps the frames between
    // that keyframe and seekSec, which the fps filter may choose for the chunk's first frames.
    args.push('-noaccurate_seek', '-ss', String(seekSec));
  }
  args.push('-i', `file:${options.input}`);

  const timing = (rung: Rung): string[] => {
    const { first, end } = frames[plan.rungs.indexOf(rung)]!;
    return [
      // Every rung on its own rate's grid of the source timeline (the one-piece encode's grid).
      `fps=${rung.frameRate}`,
      // In the fps filter's time base (1 / rate), so these are frame numbers. Chunk 0 is not cut at
      // its start, exactly as the one-piece encode is not.
      first === 0 ? `trim=end_pts=${end}` : `trim=start_pts=${first}:end_pts=${end}`,
      ...(first === 0 ? [] : [`setpts=PTS-${first}`]),
    ];
  };
  args.push(
    '-filter_complex',
    videoFilterGraph(plan, options, {
      // Input seeking starts the timestamps at seekSec; back on the source's timeline, the fps grid
      // and the frame numbers above are the one-piece encode's. Whole seconds: exact in any time base.
      head: seekSec > 0 ? [`setpts=PTS+${seekSec}/TB`] : [],
      timing,
    }),
  );

  plan.rungs.forEach((rung, i) => {
    const { first, segmentsBefore } = frames[i]!;
    const frameSec = frameDurationSec(rung);
    args.push(
      '-map',
      `[v${i}]`,
      // Each rung is the first (only) video stream of its own output file.
      ...rungEncoderArgs(rung, 0, options.preset ?? 'veryfast'),
      // The one-piece encode's `gte(t,n_forced*seg)` with the frames and segments before the chunk
      // added back: `t` counts from the chunk's first frame, and round(t/frame) is its frame number.
      ...forcedKeyframeArgs(
        `gte((round(t/${frameSec})+${first})*${frameSec},(n_forced+${segmentsBefore})*${seg})`,
      ),
      // MP4 keeps negative decode times (the first frame at 0, decoded 2 frames earlier): its edit
      // list says so, as the one-piece encode's init segments do, and the join copies them.
      '-avoid_negative_ts',
      'disabled',
      '-map_metadata',
      '-1',
      '-map_chapters',
      '-1',
      '-f',
      'mp4',
      `file:${join(options.outDir, chunkFileName(rung.id))}`,
    );
  });
  return args;
}

/**
 * Encodes one chunk (video only): one MP4 per rung, named {@link chunkFileName}, in `options.outDir`
 * (created). Rejects with a `ToolError` when ffmpeg fails, times out or is aborted; what a failed
 * attempt left in `outDir` is the caller's to remove.
 */
export async function encodeChunk(
  plan: LadderPlan,
  options: ChunkEncodeOptions,
): Promise<{ rungId: string; path: string; size: number }[]> {
  const args = chunkEncodeArgs(plan, options);
  await mkdir(options.outDir, { recursive: true });
  await runWithProgress(args, {
    durationSec: options.chunk.durationSec,
    onProgress: options.onProgress,
    timeoutMs: options.timeoutMs,
    signal: options.signal,
  });
  const files: { rungId: string; path: string; size: number }[] = [];
  for (const rung of plan.rungs) {
    const path = join(options.outDir, chunkFileName(rung.id));
    files.push({ rungId: rung.id, path, size: (await stat(path)).size });
  }
  return files;
}

export interface JoinChunksOptions {
  /** The source, for the audio (encoded once, from the whole file). */
  input: string;
  /** One directory per chunk, in order, each holding `chunkFileName(rungId)` for every rung. */
  chunkDirs: readonly string[];
  /** Directory the package is written to (created by ffmpeg). Must not contain `%`. */
  outDir: string;
  /**
   * ffprobe's index of the audio stream to encode.
   * @default the first audio stream
   */
  audioStreamIndex?: number;
  /** The source's duration in seconds, for the per cent; null: no progress until the end (100). */
  durationSec: number | null;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Whole per cents, increasing, each at most once; 100 when ffmpeg finishes. */
  onProgress?: (percent: number) => void;
}

/**
 * The join's ffmpeg arguments: one concat demuxer input per rung (`concatLists[i]`, a list of that
 * rung's chunk files), the source for the audio, and the one-piece encode's hls output. Pure.
 * Throws an Error for a plan without video rungs, a list per rung missing, or an `outDir` with `%`.
 */
export function joinChunksArgs(
  plan: LadderPlan,
  options: Pick<JoinChunksOptions, 'input' | 'outDir' | 'audioStreamIndex'> & {
    concatLists: readonly string[];
  },
): string[] {
  if (plan.rungs.length === 0) {
    throw new Error('the ladder plan has no video rungs: there are no chunks to join');
  }
  if (options.concatLists.length !== plan.rungs.length) {
    throw new Error(
      `expected one concat list per rung (${plan.rungs.length}), got ${options.concatLists.length}`,
    );
  }
  const args = [...ffmpegCommonArgs()];
  for (const list of options.concatLists) {
    // -safe 0: the list names absolute paths, which the demuxer's default refuses.
    args.push('-f', 'concat', '-safe', '0', '-i', `file:${list}`);
  }
  const audioInput = plan.rungs.length;
  if (plan.audio !== null) args.push('-i', `file:${options.input}`);
  plan.rungs.forEach((_, i) => {
    args.push('-map', `${i}:v:0`);
  });
  // The chunks' own packets: no decode, no re-encode.
  args.push('-c:v', 'copy');
  if (plan.audio !== null) {
    const source =
      options.audioStreamIndex === undefined
        ? `${audioInput}:a:0`
        : `${audioInput}:${options.audioStreamIndex}`;
    args.push(...audioEncodeArgs(plan.audio, source));
  }
  args.push(...hlsOutputArgs(plan, options.outDir));
  return args;
}

/**
 * Joins the chunks `encodeChunk` wrote for `plan` and encodes the audio once: writes exactly what
 * `encodeLadder` writes (same layout, same hls muxer options), so `packageLadder` works unchanged.
 * Rejects with an Error naming the file when a chunk file is missing or its stream does not match
 * the rung's first chunk (size, codec, time base, parameter sets: the joined stream has one init
 * segment), and with a `ToolError` when ffmpeg fails.
 */
export async function joinChunks(plan: LadderPlan, options: JoinChunksOptions): Promise<LadderOutputLayout> {
  if (options.chunkDirs.length === 0) throw new Error('no chunk directories to join');
  // The concat demuxer resolves a list's relative paths against the list's own directory.
  const files = plan.rungs.map((rung) =>
    options.chunkDirs.map((dir) => resolve(dir, chunkFileName(rung.id))),
  );
  const listDir = await mkdtemp(join(tmpdir(), 'assetpipe-join-'));
  try {
    const concatLists = plan.rungs.map((_, i) => join(listDir, `${i}.ffconcat`));
    // Built first: a plan or outDir it refuses is refused before any chunk is probed.
    const args = joinChunksArgs(plan, { ...options, concatLists });
    for (const rungFiles of files) await checkJoinable(rungFiles, options);
    for (const [i, rungFiles] of files.entries()) await writeFile(concatLists[i]!, concatList(rungFiles));
    await runWithProgress(args, options);
  } finally {
    await rm(listDir, { recursive: true, force: true });
  }
  return ladderOutputLayout(plan, options.outDir);
}

// --- helpers ---------------------------------------------------------------------------------------

/** 1 / the rung's rate, as ffmpeg's av_q2d of the encoder time base computes it. */
function frameDurationSec(rung: Rung): number {
  const [num, den] = rung.frameRate.split('/').map(Number);
  if (!Number.isInteger(num) || !Number.isInteger(den) || !(num! > 0) || !(den! > 0)) {
    throw new Error(`rung ${rung.id}: frame rate ${rung.frameRate} is not a rational num/den`);
  }
  return den! / num!;
}

/** The first k with k * frameSec >= timeSec, in doubles as ffmpeg compares `t` (ceil may be off by one). */
function firstFrameAtOrAfter(timeSec: number, frameSec: number): number {
  let k = Math.max(0, Math.ceil(timeSec / frameSec));
  while (k > 0 && (k - 1) * frameSec >= timeSec) k--;
  while (k * frameSec < timeSec) k++;
  return k;
}

/** `sec / segmentSec` when it is a whole number (within float noise), else null. */
function wholeSegments(sec: number, segmentSec: number): number | null {
  const n = Math.round(sec / segmentSec);
  return n >= 0 && Math.abs(n * segmentSec - sec) < 1e-6 ? n : null;
}

interface ChunkStream {
  codec_type?: string;
  codec_name?: string;
  profile?: string;
  width?: number;
  height?: number;
  pix_fmt?: string;
  time_base?: string;
  r_frame_rate?: string;
  extradata?: string;
}

/**
 * The concat demuxer takes the first file's stream parameters for all of them and does not look at
 * the others: a chunk encoded with other settings, or by an x264 writing other parameter sets (another
 * worker's build), would be copied under the wrong init segment and decode as garbage. Refuses that.
 */
async function checkJoinable(files: readonly string[], options: JoinChunksOptions): Promise<void> {
  let reference: { file: string; stream: ChunkStream } | undefined;
  for (const file of files) {
    try {
      await stat(file);
    } catch {
      throw new Error(`chunk file ${file} is missing`);
    }
    const { stdout } = await run(
      'ffprobe',
      [
        '-v',
        'error',
        '-of',
        'json',
        '-show_data',
        '-show_entries',
        'stream=codec_type,codec_name,profile,width,height,pix_fmt,time_base,r_frame_rate,extradata',
        `file:${file}`,
      ],
      { timeoutMs: options.timeoutMs, signal: options.signal },
    );
    const streams = (JSON.parse(stdout) as { streams?: ChunkStream[] }).streams ?? [];
    const stream = streams.length === 1 && streams[0]!.codec_type === 'video' ? streams[0]! : undefined;
    if (stream === undefined) {
      throw new Error(`chunk file ${file}: expected one video stream, found ${streams.length} streams`);
    }
    if (reference === undefined) {
      reference = { file, stream };
      continue;
    }
    const differs = (Object.keys(reference.stream) as (keyof ChunkStream)[]).filter(
      (key) => reference!.stream[key] !== stream[key],
    );
    if (differs.length > 0) {
      throw new Error(
        `chunk file ${file} cannot be joined to ${reference.file}: its ${differs.join(', ')} differ`,
      );
    }
  }
}
