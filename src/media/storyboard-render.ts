import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type StoryboardPlan, storyboardVtt } from '../domain/storyboard.js';
import { type RunOptions, run } from './ffmpeg.js';
import { sharp } from './image-sharp.js';

// The storyboard's pixels: one ffmpeg run decodes the video, keeps one frame per `intervalSec`,
// scales it to the tile size and tiles `columns x rows` frames per sheet (PNG, lossless); sharp then
// crops each sheet to the rows and columns the plan says it uses and encodes it as JPEG once.
//
// Which frames are decoded: `-skip_frame nokey` makes the decoder drop every non-key frame, which
// costs a fraction of a full decode (60 s of 640x360 H.264, 2 s GOP, tiles every 2 s: 0.17 s of CPU
// instead of 1.23 s, measured here). It is only right when there is a keyframe in every interval;
// with a 6 s GOP and 1 s tiles, five tiles out of six would repeat the last keyframe. So the keyframe spacing is known (the rung's GOP, passed in) or measured
// from packet flags (demuxing only, no decode), and keyframe-only decoding is used only when the
// largest gap between keyframes is at most the tile interval; otherwise every frame is decoded.
//
// Which frame a tile shows: tile k's cue is [k x interval, (k+1) x interval), and `fps=1/interval`
// picks its frame. fps rounds each frame's time to an output slot and gives slot k the last frame
// that rounded to at most k, so the rounding mode decides (measured on a clip whose luma counts the
// frames, see test/medium/poster-storyboard.test.ts):
//   - all frames decoded: `round=up` -> the last frame at or before k x interval, i.e. the frame at
//     the cue's start (the default `near` gave the frame half an interval later);
//   - keyframes only: `round=down` -> the last keyframe before (k+1) x interval, which lies inside
//     the cue since keyframes are at most one interval apart (`up` would show the previous cue's).
// `tpad` clones the last frame for one more interval so that the final slot exists even when the
// video ends just after it, and `select=lt(n,tileCount)` keeps exactly the planned number of tiles.

/** How the frames are decoded: keyframes only (cheap) or all of them. */
export type StoryboardDecode = 'keyframes' | 'all';

/** How much of the video is demuxed to measure the keyframe spacing when it is not given. */
export const KEYFRAME_PROBE_SEC = 120;

/** `ffprobe` arguments listing the video packets' times and flags over the first `seconds`. */
export function keyframeProbeArgs(path: string, seconds: number, streamIndex?: number): string[] {
  return [
    '-v',
    'error',
    '-protocol_whitelist',
    'file',
    '-select_streams',
    streamIndex === undefined ? 'v:0' : String(streamIndex),
    // Demuxing only: packet flags say which packets are keyframes without decoding anything.
    '-read_intervals',
    `%+${seconds}`,
    '-show_entries',
    'packet=pts_time,flags',
    '-of',
    'csv=p=0',
    '-i',
    `file:${path}`,
  ];
}

/**
 * The largest gap between keyframes in `ffprobe -show_entries packet=pts_time,flags -of csv=p=0`
 * output (lines `0.040000,K_`), counting from the first packet to the first keyframe and from the
 * last keyframe to the last packet; `null` when no keyframe has a time.
 */
export function maxKeyframeGapSec(csv: string): number | null {
  const keyframes: number[] = [];
  let first = Number.POSITIVE_INFINITY;
  let last = Number.NEGATIVE_INFINITY;
  for (const line of csv.split('\n')) {
    const [time, flags] = line.trim().split(',');
    const t = Number(time);
    if (time === undefined || time === '' || !Number.isFinite(t)) continue;
    first = Math.min(first, t);
    last = Math.max(last, t);
    if (flags?.includes('K')) keyframes.push(t);
  }
  if (keyframes.length === 0) return null;
  // Packets come in decode order; B-frames make presentation times non-monotonic.
  keyframes.sort((a, b) => a - b);
  let gap = (keyframes[0] ?? first) - first;
  for (let i = 1; i < keyframes.length; i++) {
    gap = Math.max(gap, (keyframes[i] ?? 0) - (keyframes[i - 1] ?? 0));
  }
  return Math.max(gap, last - (keyframes.at(-1) ?? last));
}

/**
 * Keyframe-only decoding when every interval holds a keyframe (largest gap at most the interval,
 * with a millisecond for rounded timestamps); all frames otherwise or when the spacing is unknown.
 */
export function chooseStoryboardDecode(intervalSec: number, keyframeGapSec: number | null): StoryboardDecode {
  return keyframeGapSec !== null && keyframeGapSec <= intervalSec + 0.001 ? 'keyframes' : 'all';
}

/** ffmpeg arguments writing the sheets as `sheet-00001.png`, ... into `outputDir`. */
export function storyboardArgs(
  path: string,
  plan: StoryboardPlan,
  options: { decode: StoryboardDecode; outputDir: string; streamIndex?: number },
): string[] {
  const rate = Number.isInteger(plan.intervalSec) ? `1/${plan.intervalSec}` : String(1 / plan.intervalSec);
  return [
    '-hide_banner',
    '-nostdin',
    '-v',
    'error',
    '-protocol_whitelist',
    'file',
    // A decoder option, so it goes before its input: drop non-key frames without decoding them.
    ...(options.decode === 'keyframes' ? ['-skip_frame', 'nokey'] : []),
    '-i',
    `file:${path}`,
    '-map',
    options.streamIndex === undefined ? '0:v:0' : `0:${options.streamIndex}`,
    '-an',
    '-sn',
    '-dn',
    '-vf',
    [
      `tpad=stop_mode=clone:stop_duration=${plan.intervalSec}`,
      `fps=${rate}:round=${options.decode === 'keyframes' ? 'down' : 'up'}`,
      `select='lt(n,${plan.tileCount})'`,
      // ffmpeg has already autorotated the frames; the plan's tile size is the displayed aspect, so
      // forcing it exactly also undoes any anamorphic sample aspect ratio.
      `scale=${plan.tileWidth}:${plan.tileHeight}`,
      'setsar=1',
      // A partly filled last sheet comes out at the full layout, padded black; sharp crops it.
      `tile=${plan.columns}x${plan.rows}`,
    ].join(','),
    // One image per tile output, as it comes: no frame-rate conversion at the muxer.
    '-fps_mode',
    'passthrough',
    '-frames:v',
    String(plan.sheets.length),
    '-f',
    'image2',
    '-c:v',
    'png',
    '-y',
    join(options.outputDir, 'sheet-%05d.png'),
  ];
}

export interface RenderStoryboardOptions extends RunOptions {
  /** A directory this call may write its sheets into (a subdirectory is made and removed). */
  scratchDir: string;
  /**
   * Largest distance between keyframes, seconds, when the caller knows it (a rung it encoded with
   * a fixed GOP); measured from the first {@link KEYFRAME_PROBE_SEC} s of packets otherwise.
   */
  keyframeIntervalSec?: number;
  /** The stream to read (ffprobe's `index`). @default the first video stream */
  streamIndex?: number;
  /** URL of sheet `i` as the VTT should reference it. @default `storyboard-<i>.jpg` */
  sheetUrl?: (sheet: number) => string;
  /** @default 70 */
  jpegQuality?: number;
}

export interface RenderedSheet {
  index: number;
  width: number;
  height: number;
  jpeg: Buffer;
}

export interface RenderedStoryboard {
  sheets: RenderedSheet[];
  /** WebVTT with one cue per tile pointing into the sheets with `#xywh=`. */
  vtt: string;
  /** How the frames were decoded (recorded on the run: the cheap path should be the usual one). */
  decode: StoryboardDecode;
}

/**
 * Renders the sprite sheets of `plan` (one JPEG per `plan.sheets` entry, at exactly its size) and
 * their WebVTT. The plan must be made from the displayed size (rotation applied). Rejects with a
 * `ToolError` when ffmpeg or ffprobe fails and with an `Error` when ffmpeg wrote a different number of
 * sheets than planned.
 */
export async function renderStoryboard(
  path: string,
  plan: StoryboardPlan,
  options: RenderStoryboardOptions,
): Promise<RenderedStoryboard> {
  const runOptions: RunOptions = { timeoutMs: options.timeoutMs, signal: options.signal };
  let gap = options.keyframeIntervalSec ?? null;
  if (gap === null) {
    const probe = await run(
      'ffprobe',
      keyframeProbeArgs(path, KEYFRAME_PROBE_SEC, options.streamIndex),
      runOptions,
    );
    gap = maxKeyframeGapSec(probe.stdout);
  }
  const decode = chooseStoryboardDecode(plan.intervalSec, gap);
  const dir = await mkdtemp(join(options.scratchDir, 'storyboard-'));
  try {
    await run(
      'ffmpeg',
      storyboardArgs(path, plan, { decode, outputDir: dir, streamIndex: options.streamIndex }),
      runOptions,
    );
    const files = (await readdir(dir)).filter((f) => /^sheet-\d{5}\.png$/.test(f)).sort();
    if (files.length !== plan.sheets.length) {
      throw new Error(`ffmpeg wrote ${files.length} storyboard sheets, the plan has ${plan.sheets.length}`);
    }
    const sheets = await Promise.all(
      plan.sheets.map(async (sheet, i) => ({
        index: sheet.index,
        width: sheet.width,
        height: sheet.height,
        jpeg: await sharp(join(dir, files[i] ?? ''))
          .extract({ left: 0, top: 0, width: sheet.width, height: sheet.height })
          .jpeg({ quality: options.jpegQuality ?? 70, mozjpeg: true })
          .toBuffer(),
      })),
    );
    const sheetUrl = options.sheetUrl ?? ((i: number) => `storyboard-${i}.jpg`);
    return { sheets, vtt: storyboardVtt(plan, sheetUrl), decode };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
