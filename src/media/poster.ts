import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type RunOptions, run } from './ffmpeg.js';
import { analyseImage } from './image-analysis.js';
import { sharp } from './image-sharp.js';

// The poster: one representative frame that is neither black nor blank, as JPEG and WebP plus its
// BlurHash. ffmpeg 5.1's `thumbnail` filter alone picked a black frame on a clip that opens on black
// (it picks the frame closest to the batch's average histogram, and a long black intro IS the
// average), so dark and flat frames are ruled out before it ever sees them:
//
//   1. scan   one decode of a bounded prefix of the video, decimated to one frame every `stepSec`,
//             shrunk to 64 px, `signalstats` printing each sample's luma mean and 10th/90th
//             percentiles (YAVG, YLOW, YHIGH) to stdout;
//   2. choose (pure, below) the longest run of consecutive samples that are bright enough and not
//             flat, capped to a window of at most MAX_WINDOW_SEC in the middle of that run;
//   3. pick   a second, seeking decode of only that window, the same decimation, and `thumbnail`
//             over those frames: the most typical frame of a stretch known to be lit and textured.
//
// If no sample qualifies (an all-black or all-blank video), the brightest sample is taken and the
// result says `allDark: true`. ffmpeg autorotates while decoding, and the sample aspect ratio is
// applied in the pick, so the poster has the video's displayed size and orientation.

/** One decimated frame's luma statistics (8-bit values, from `signalstats`). */
export interface LumaSample {
  timeSec: number;
  /** Mean luma. */
  yavg: number;
  /** 10th and 90th percentile of luma. */
  ylow: number;
  yhigh: number;
}

/**
 * Mean luma below which a frame is dark. Limited-range black is 16; blackdetect's default pixel
 * threshold (0.1 of the range) puts "black" at 16 + 0.1 x 219 = 38 — 40 rounds that up, and also
 * covers full-range sources where black is 0.
 */
export const DARK_YAVG = 40;
/**
 * 90th minus 10th percentile of luma below which a frame is flat (a blank card, a fade, title text
 * covering less than a tenth of a black screen). testsrc2 and real footage spread far wider.
 */
export const FLAT_SPREAD = 10;
/** Longest stretch handed to `thumbnail`: its pick only needs a few seconds of similar frames. */
export const MAX_WINDOW_SEC = 10;

/** How much of the video the scan decodes, and how often it samples. */
export interface ScanRange {
  scanSec: number;
  stepSec: number;
}

/** Part of the video scanned: 30 % of it, at least 10 s and at most 60 s (never past the end). */
const SCAN_FRACTION = 0.3;
const MIN_SCAN_SEC = 10;
const MAX_SCAN_SEC = 60;
/** Samples per scan at most (keeps the stats output near 100 kB), and the finest sampling step. */
const MAX_SAMPLES = 120;
const MIN_STEP_SEC = 0.25;

/**
 * The scan's bounds. The prefix is bounded so the cost does not grow with a film's length (a full
 * decode is the expensive part); 10 s at least so a short clip opening on a few seconds of black
 * still reaches its picture.
 */
export function posterScanRange(durationSec: number): ScanRange {
  const wanted = Math.min(MAX_SCAN_SEC, Math.max(MIN_SCAN_SEC, durationSec * SCAN_FRACTION));
  const scanSec = Number.isFinite(durationSec) && durationSec > 0 ? Math.min(durationSec, wanted) : wanted;
  const stepSec = Math.max(MIN_STEP_SEC, scanSec / MAX_SAMPLES);
  return { scanSec, stepSec };
}

/**
 * Keeps the first frame, then the first frame at least `stepSec` after the last kept one. Unlike
 * `fps`, it never duplicates a frame (a one-frame video gives one sample, not none or several).
 */
export function decimateFilter(stepSec: number): string {
  return `select='isnan(prev_selected_t)+gte(t-prev_selected_t,${stepSec})'`;
}

/** Common input arguments: errors only, local files only, one video stream, nothing else. */
function inputArgs(
  path: string,
  streamIndex: number | undefined,
  range: { startSec?: number; durationSec?: number },
) {
  const args = ['-hide_banner', '-nostdin', '-v', 'error', '-protocol_whitelist', 'file'];
  // Input seeking: fast (demuxer seek to the keyframe before) and accurate (ffmpeg decodes and drops
  // the frames before startSec); the filter graph's timestamps then start at 0 at startSec.
  if (range.startSec !== undefined) args.push('-ss', String(range.startSec));
  if (range.durationSec !== undefined) args.push('-t', String(range.durationSec));
  // `file:` keeps a name beginning with "-" or containing "proto:" from being read as anything else.
  args.push('-i', `file:${path}`);
  args.push('-map', streamIndex === undefined ? '0:v:0' : `0:${streamIndex}`, '-an', '-sn', '-dn');
  return args;
}

/** ffmpeg arguments of the scan: luma statistics of one frame every `stepSec` over `scanSec`. */
export function posterScanArgs(path: string, range: ScanRange, streamIndex?: number): string[] {
  return [
    ...inputArgs(path, streamIndex, { durationSec: range.scanSec }),
    '-vf',
    [
      decimateFilter(range.stepSec),
      // Statistics of a 64 px thumbnail are as good for "dark or flat" and far cheaper; yuv420p makes
      // the values 8-bit whatever the source's depth, so the thresholds hold for 10-bit HDR too.
      'scale=64:-2',
      'format=yuv420p',
      'signalstats',
      // `-` is stdout (ffmpeg's pipe:1): one `frame:N pts:P pts_time:T` line, then key=value lines.
      'metadata=mode=print:file=-',
    ].join(','),
    '-f',
    'null',
    '-',
  ];
}

/** Parses `metadata=mode=print` output of `signalstats` into samples; frames lacking a value are dropped. */
export function parseLumaSamples(stdout: string): LumaSample[] {
  const samples: LumaSample[] = [];
  let current: Partial<LumaSample> | null = null;
  const flush = () => {
    if (
      current?.timeSec !== undefined &&
      current.yavg !== undefined &&
      current.ylow !== undefined &&
      current.yhigh !== undefined
    ) {
      samples.push(current as LumaSample);
    }
  };
  for (const line of stdout.split('\n')) {
    const frame = /^frame:\s*\d+\s+pts:\s*\S+\s+pts_time:\s*(\S+)/.exec(line);
    if (frame) {
      flush();
      const timeSec = Number(frame[1]);
      current = Number.isFinite(timeSec) ? { timeSec } : {};
      continue;
    }
    const entry = /^lavfi\.signalstats\.(YAVG|YLOW|YHIGH)=(\S+)/.exec(line.trim());
    if (!entry || !current) continue;
    const value = Number(entry[2]);
    if (!Number.isFinite(value)) continue;
    if (entry[1] === 'YAVG') current.yavg = value;
    else if (entry[1] === 'YLOW') current.ylow = value;
    else current.yhigh = value;
  }
  flush();
  return samples;
}

/** Lit and textured: a candidate for the poster. */
export function isPosterCandidate(sample: LumaSample): boolean {
  return sample.yavg >= DARK_YAVG && sample.yhigh - sample.ylow >= FLAT_SPREAD;
}

export type PosterChoice =
  /** Let `thumbnail` pick among the frames of [startSec, startSec + durationSec). */
  | { kind: 'window'; startSec: number; durationSec: number }
  /** No candidate: take the frame at `timeSec` (the brightest sample). */
  | { kind: 'brightest'; timeSec: number };

/**
 * Where the poster comes from: the longest run of consecutive candidate samples (the earliest on a
 * tie), as a window from its first sample to one step past its last, cut to its middle
 * {@link MAX_WINDOW_SEC} seconds. Without any candidate, the brightest sample (earliest on a tie),
 * or the first frame when there are no samples at all.
 */
export function choosePosterFrame(samples: readonly LumaSample[], stepSec: number): PosterChoice {
  let best: { first: number; last: number } | null = null;
  let runStart = -1;
  for (let i = 0; i <= samples.length; i++) {
    const sample = samples[i];
    if (sample && isPosterCandidate(sample)) {
      if (runStart < 0) runStart = i;
      continue;
    }
    if (runStart >= 0) {
      if (!best || i - 1 - runStart > best.last - best.first) best = { first: runStart, last: i - 1 };
      runStart = -1;
    }
  }
  if (!best) {
    let brightest: LumaSample | undefined;
    for (const sample of samples) if (!brightest || sample.yavg > brightest.yavg) brightest = sample;
    return { kind: 'brightest', timeSec: brightest?.timeSec ?? 0 };
  }
  const start = samples[best.first]?.timeSec ?? 0;
  const end = (samples[best.last]?.timeSec ?? start) + stepSec;
  const durationSec = Math.min(MAX_WINDOW_SEC, end - start);
  const startSec = start + (end - start - durationSec) / 2;
  return { kind: 'window', startSec: round3(startSec), durationSec: round3(durationSec) };
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}

/**
 * ffmpeg arguments that write the chosen frame as PNG to `output`, printing its time (relative to
 * the seek point) and luma statistics to stdout.
 */
export function posterPickArgs(
  path: string,
  choice: PosterChoice,
  options: { stepSec: number; output: string; streamIndex?: number },
): string[] {
  const filters: string[] = [];
  let input: string[];
  if (choice.kind === 'window') {
    input = inputArgs(path, options.streamIndex, {
      startSec: choice.startSec,
      durationSec: choice.durationSec,
    });
    // The same decimation as the scan, so `thumbnail` compares frames spread over the window rather
    // than 25 near-identical ones per second. Its batch is every frame of the window: `n` larger than
    // the frames available is fine, the filter picks from what it got when the input ends.
    const frames = Math.ceil(choice.durationSec / options.stepSec) + 1;
    filters.push(decimateFilter(options.stepSec), `thumbnail=n=${Math.max(2, frames)}`);
  } else {
    input = inputArgs(path, options.streamIndex, { startSec: choice.timeSec });
  }
  filters.push(
    // Anamorphic sources: the displayed width is the stored width x the sample aspect ratio.
    "scale=w='trunc(iw*sar/2)*2':h='trunc(ih/2)*2'",
    'setsar=1',
    'signalstats',
    'metadata=mode=print:file=-',
  );
  return [
    ...input,
    '-vf',
    filters.join(','),
    '-frames:v',
    '1',
    '-f',
    'image2',
    '-c:v',
    'png',
    '-y',
    options.output,
  ];
}

export interface RenderPosterOptions extends RunOptions {
  /** The video's duration from the probe, seconds (bounds the scan). */
  durationSec: number;
  /** A directory this call may write its temporary frame into (a subdirectory is made and removed). */
  scratchDir: string;
  /** The stream to read (ffprobe's `index`). @default the first video stream */
  streamIndex?: number;
  /** BlurHash components. @default { x: 4, y: 3 } */
  blurhashComponents?: { x: number; y: number };
  /** @default 82 */
  jpegQuality?: number;
  /** @default 80 */
  webpQuality?: number;
}

export interface Poster {
  /** Where the frame is in the video, seconds from its start. */
  timeSec: number;
  jpeg: Buffer;
  webp: Buffer;
  /** Displayed size (rotation and sample aspect ratio applied). */
  width: number;
  height: number;
  blurhash: string;
  /**
   * No scanned frame was both lit and textured (black, a blank card, a fade): the poster is the
   * brightest frame found and is probably not worth showing.
   */
  allDark: boolean;
}

/**
 * Picks and encodes the poster of the video at `path` (two ffmpeg runs: a decimated scan of at most
 * 60 s, then a seek into the chosen window). Rejects with a `ToolError` when ffmpeg fails, and with
 * an `Error` when it wrote no frame.
 */
export async function renderPoster(path: string, options: RenderPosterOptions): Promise<Poster> {
  const runOptions: RunOptions = { timeoutMs: options.timeoutMs, signal: options.signal };
  const range = posterScanRange(options.durationSec);
  const scan = await run('ffmpeg', posterScanArgs(path, range, options.streamIndex), runOptions);
  const choice = choosePosterFrame(parseLumaSamples(scan.stdout), range.stepSec);
  const dir = await mkdtemp(join(options.scratchDir, 'poster-'));
  try {
    const png = join(dir, 'poster.png');
    const pick = await run(
      'ffmpeg',
      posterPickArgs(path, choice, { stepSec: range.stepSec, output: png, streamIndex: options.streamIndex }),
      runOptions,
    );
    const [picked] = parseLumaSamples(pick.stdout);
    const offset = choice.kind === 'window' ? choice.startSec : choice.timeSec;
    const frame = sharp(png);
    const meta = await frame.metadata().catch((err: unknown) => {
      throw new Error(`ffmpeg wrote no poster frame for ${choice.kind} ${JSON.stringify(choice)}`, {
        cause: err,
      });
    });
    const [jpeg, webp, analysis] = await Promise.all([
      frame
        .clone()
        .jpeg({ quality: options.jpegQuality ?? 82, mozjpeg: true })
        .toBuffer(),
      frame
        .clone()
        .webp({ quality: options.webpQuality ?? 80 })
        .toBuffer(),
      analyseImage({
        path: png,
        probe: { format: 'png', pages: 1 },
        // Our own frame: its own size is the limit.
        limits: { maxInputPixels: meta.width * meta.height },
        blurhashComponents: options.blurhashComponents ?? { x: 4, y: 3 },
      }),
    ]);
    return {
      timeSec: round3(offset + (picked?.timeSec ?? 0)),
      jpeg,
      webp,
      width: meta.width,
      height: meta.height,
      blurhash: analysis.blurhash,
      allDark: choice.kind === 'brightest',
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
