import { COMPLEXITY_PROBE_CRF, complexityProbeFor, DEFAULT_LADDER_SETTINGS } from '../domain/ladder.js';
import { run } from './ffmpeg.js';
import type { VideoProbe } from './ffprobe-parse.js';
import { toneMapFilters, type X264Preset } from './ladder-encode.js';
// A pure probe -> planner-input mapping; imported rather than copied so the probe measures at
// exactly the size and frame rate the planner will scale its result from.
import { ladderSourceFromProbe } from './ladder-source.js';

// The complexity probe of automated ABR: how many bits per pixel per frame the content needs at the
// ladder's own constant quality (`complexityProbeFor` in domain/ladder.ts says at which size, frame
// rate and CRF). A few windows spread over the source are decoded with input seeking (`-ss` before
// `-i`: the demuxer jumps to the keyframe before each window, so a 2-hour film costs what a
// 2-minute one does), scaled, joined with `concat` and encoded with x264 like a rung, uncapped.
// The packets' sizes are read from ffmpeg's `framecrc` muxer on stdout (one text line per packet):
// no temporary file, and the frame count comes with them.
//
// Each window is one segment long and starts a GOP, as a segment of the real encode does. The
// keyframe share decides much of a still's bits: a slideshow measured 0.0024 bpp with a keyframe
// every 6 s and 0.0050 with one every 2 s (720p, CRF 23, veryfast, ffmpeg 5.1), so windows shorter
// than a segment would double its estimate.

/** One stretch of the source the probe encodes. */
export interface SampleWindow {
  /** Where it starts in the source, seconds. */
  startSec: number;
  /** How long it is, seconds; null: to the end of the source. */
  durationSec: number | null;
}

export interface MeasureComplexityOptions {
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /**
   * x264 preset: the real encode's, so the probe predicts the rungs' sizes.
   * @default 'veryfast'
   */
  preset?: X264Preset;
  /**
   * The ladder's segment duration (its keyframe interval), seconds: each window is one segment
   * long (at most 10 s) and starts with a keyframe.
   * @default 6 (DEFAULT_LADDER_SETTINGS.segmentDurationSec)
   */
  segmentDurationSec?: number;
}

export interface ComplexityMeasurement {
  /** Video bits / (probe width × probe height × frames): what `LadderSourceVideo.complexityBpp` takes. */
  complexityBpp: number;
  /** Seconds of video the probe encoded (its frames at the probe frame rate). */
  sampledSec: number;
  /** Windows encoded: 1 when the whole source was. */
  samples: number;
}

/** Windows sampled from a long source. */
export const COMPLEXITY_SAMPLES = 4;
// A window longer than this (a 30 s segment setting) would make the probe cost a real encode; the
// estimate then counts a keyframe more often than the ladder does, which errs towards higher caps.
const MAX_WINDOW_SEC = 10;
// Sampling a source at most this many times the sampled length would save less than a third of
// the probe's work while missing part of the content: the whole source is encoded instead.
const WHOLE_SOURCE_FACTOR = 1.5;

/**
 * The windows the probe encodes for a source of `durationSec` (null: unknown) with windows of
 * `windowSec`: the whole source when it is short (at most {@link COMPLEXITY_SAMPLES} × 1.5
 * windows), the first {@link COMPLEXITY_SAMPLES} windows' worth when its length is unknown, else
 * {@link COMPLEXITY_SAMPLES} windows centred in equal parts of it (the middle of each quarter, so
 * neither the first frames, often a title, nor the last, often credits, are all it sees). Pure.
 */
export function complexitySampleWindows(durationSec: number | null, windowSec: number): SampleWindow[] {
  if (!(windowSec > 0)) throw new Error(`windowSec must be a positive number of seconds, got ${windowSec}`);
  const sampledSec = COMPLEXITY_SAMPLES * windowSec;
  if (durationSec === null || !Number.isFinite(durationSec) || durationSec <= 0) {
    return [{ startSec: 0, durationSec: sampledSec }];
  }
  if (durationSec <= sampledSec * WHOLE_SOURCE_FACTOR) return [{ startSec: 0, durationSec: null }];
  return Array.from({ length: COMPLEXITY_SAMPLES }, (_, i) => {
    const centre = (durationSec * (i + 0.5)) / COMPLEXITY_SAMPLES;
    const startSec = Math.min(Math.max(0, centre - windowSec / 2), durationSec - windowSec);
    // Millisecond precision: `-ss` is parsed as decimal seconds and float noise would only clutter
    // the command line recorded with an error.
    return { startSec: Math.round(startSec * 1000) / 1000, durationSec: windowSec };
  });
}

export interface ComplexityProbeArgsOptions {
  /** The source file. */
  input: string;
  windows: readonly SampleWindow[];
  /** Keyframe interval, seconds (the window length). */
  keyframeSec: number;
  preset: X264Preset;
}

/**
 * The ffmpeg arguments (no `ffmpeg` itself) of the probe encode: every window an input of its own,
 * scaled to the probe size at the probe frame rate, tone-mapped to SDR when the source is HDR,
 * joined, encoded with x264 at CRF {@link COMPLEXITY_PROBE_CRF} without a rate cap, and written
 * as `framecrc` lines (one per packet: stream, dts, pts, duration, size, checksum) to stdout. Pure.
 * Throws an Error for a probe without a video stream.
 */
export function complexityProbeArgs(probe: VideoProbe, options: ComplexityProbeArgsOptions): string[] {
  const source = ladderSourceFromProbe(probe);
  if (source.video === null || probe.video === null) {
    throw new Error('the source has no video stream: there is no complexity to measure');
  }
  if (options.windows.length === 0) throw new Error('at least one sample window is needed');
  const size = complexityProbeFor(source.video);
  const gop = Math.ceil(options.keyframeSec * size.frameRateFps - 1e-6);
  const inputs = options.windows.flatMap((w) => [
    ...(w.startSec > 0 ? ['-ss', String(w.startSec)] : []),
    ...(w.durationSec === null ? [] : ['-t', String(w.durationSec)]),
    // `file:` keeps a name beginning with "-" or containing "proto:" from being read as anything else.
    '-i',
    `file:${options.input}`,
  ]);
  const perWindow = [
    // Constant rate first (a variable-rate source, or 120 fps brought to 60) so that frames count
    // what the rungs will encode; av_parse_video_rate turns 29.97002997... back into 30000/1001.
    `fps=${size.frameRateFps}`,
    // Scaled before the tone map: the same picture for the estimate, at a fraction of the float
    // work zscale would do on a full 4K frame.
    `scale=${size.widthPx}:${size.heightPx}`,
    ...(source.video.dynamicRange === 'sdr' ? [] : toneMapFilters(source.video.dynamicRange)),
    'setsar=1',
  ].join(',');
  const n = options.windows.length;
  const graph =
    n === 1
      ? `[0:${probe.video.index}]${perWindow}[v]`
      : [
          ...options.windows.map((_, i) => `[${i}:${probe.video!.index}]${perWindow}[w${i}]`),
          `${options.windows.map((_, i) => `[w${i}]`).join('')}concat=n=${n}:v=1:a=0[v]`,
        ].join(';');
  return [
    '-hide_banner',
    '-v',
    'error',
    '-nostdin',
    ...inputs,
    '-filter_complex',
    graph,
    '-map',
    '[v]',
    // The rungs' encoder settings (ladder-encode.ts), less the rate cap: the probe measures what
    // the quality target costs, the planner then puts the caps above it.
    '-c:v',
    'libx264',
    '-preset',
    options.preset,
    '-profile:v',
    'high',
    '-pix_fmt',
    'yuv420p',
    '-crf',
    String(size.crf),
    // One GOP per window, like one per segment in the ladder; no scene-cut keyframes, or every
    // joint between two windows (a hard cut) would add one the ladder does not have.
    '-g',
    String(gop),
    '-keyint_min',
    String(gop),
    '-sc_threshold',
    '0',
    '-force_key_frames',
    `expr:gte(t,n_forced*${options.keyframeSec})`,
    '-an',
    '-sn',
    '-dn',
    '-f',
    'framecrc',
    '-',
  ];
}

/** Packets and bytes of the `framecrc` lines ffmpeg printed. Pure. */
export function framecrcTotals(text: string): { packets: number; bytes: number } {
  let packets = 0;
  let bytes = 0;
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const size = Number(line.split(',')[4]);
    if (!Number.isFinite(size)) throw new Error(`unexpected framecrc line: ${line.slice(0, 120)}`);
    packets++;
    bytes += size;
  }
  return { packets, bytes };
}

/**
 * Measures the complexity of `path`'s video (see the top of this file). Rejects with an Error for
 * a probe without video or an encode that produced no frame, and with a `ToolError` when ffmpeg
 * fails, times out or is aborted (worth a retry: the probe step has already refused files ffmpeg
 * cannot read).
 */
export async function measureComplexity(
  path: string,
  probe: VideoProbe,
  options: MeasureComplexityOptions,
): Promise<ComplexityMeasurement> {
  const video = ladderSourceFromProbe(probe).video;
  if (video === null) throw new Error('the source has no video stream: there is no complexity to measure');
  const size = complexityProbeFor(video);
  const keyframeSec = Math.min(
    options.segmentDurationSec ?? DEFAULT_LADDER_SETTINGS.segmentDurationSec,
    MAX_WINDOW_SEC,
  );
  const windows = complexitySampleWindows(probe.durationSec, keyframeSec);
  const args = complexityProbeArgs(probe, {
    input: path,
    windows,
    keyframeSec,
    preset: options.preset ?? 'veryfast',
  });
  const { stdout } = await run('ffmpeg', args, { timeoutMs: options.timeoutMs, signal: options.signal });
  const { packets, bytes } = framecrcTotals(stdout);
  if (packets === 0) throw new Error('the complexity probe encoded no frame');
  return {
    complexityBpp: (bytes * 8) / (size.widthPx * size.heightPx * packets),
    sampledSec: packets / size.frameRateFps,
    samples: windows.length,
  };
}
