// The adaptive-bitrate ladder for one video: which rungs (sizes, frame rates, codecs), the capped-CRF
// rate control of each, and the one shared audio rendition. Pure: it reads a probe result (and, when
// the encoder step has measured it, the content's complexity) and returns a plan whose `reasons`
// say in plain sentences why every rung is there, why others were dropped and why each cap is what
// it is. The plan is recorded on the run, so "why did my video get three rungs?" has an answer.
//
// The rules, in the order they are applied:
//  1. Sizes: the standard rungs (by their SHORT side, so portrait 1080x1920 is "1080p") that fit the
//     source; never an upscale. A source whose short side falls between rungs (1366x768), or below
//     the smallest (320x180), keeps its own size as the top rung. Sizes are even (4:2:0 needs it)
//     and keep the source's aspect.
//  2. Frame rate: constant (HLS and a fixed GOP need it), at most 60 fps; rungs at or below 480p are
//     halved when the source runs above 30 fps (unless that rung is the top one).
//  3. Caps: from the fixed default table, or from the measured complexity (automated ABR).
//  4. Minimum: rungs whose total (video cap + audio) is below the configured minimum are dropped.
//  5. Spacing: adjacent rungs at least 1.5x apart in total bitrate, else the lower one is dropped.
//  6. Maximum: caps cut to the configured maximum total; a rung cut to nearly (1.2x) the bitrate of
//     the one below is dropped.
//  7. Codecs: H.264 always; HEVC/AV1 rungs at the same sizes when configured.

export type VideoCodec = 'h264' | 'hevc' | 'av1';

/** SDR, or the HDR transfer function ffprobe reports (`smpte2084` = PQ, `arib-std-b67` = HLG). */
export type DynamicRange = 'sdr' | 'pq' | 'hlg';

/** The video stream as the probe step reads it. */
export interface LadderSourceVideo {
  /**
   * Displayed width in pixels: after the rotation of the display matrix and after the sample aspect
   * ratio (an anamorphic 1440x1080 16:9 stream is 1920 wide here). Odd values are allowed.
   */
  widthPx: number;
  /** Displayed height in pixels (see `widthPx`). */
  heightPx: number;
  /** Average frame rate in frames per second (ffprobe `avg_frame_rate`); null or 0 when unknown. */
  frameRateFps: number | null;
  /** True when frame durations vary (phone clips, screen recordings). */
  variableFrameRate: boolean;
  /** Frames in the stream when the probe knows them (`nb_frames`); detects a one-frame video. */
  frameCount?: number | null;
  dynamicRange: DynamicRange;
  /** Bits per colour sample: 8, 10 or 12. */
  bitDepth: number;
  /**
   * Measured complexity in bits per pixel per frame, or null/absent for the fixed default ladder.
   * Measured by the encoder step as {@link complexityProbeFor} describes: a constant-quality H.264
   * encode (CRF {@link COMPLEXITY_PROBE_CRF}, no rate cap) of a few sampled seconds at the probe size
   * and frame rate; the value is `video bits / (width × height × frames)`. Rough guide at 720p:
   * a slideshow or screen recording 0.003-0.01, a talking head 0.02-0.04, a film 0.05-0.08, a
   * football match or film grain 0.1 and up.
   */
  complexityBpp?: number | null;
}

/** The first audio stream as the probe step reads it. */
export interface LadderSourceAudio {
  /** Channel count: 1 mono, 2 stereo, 6 for 5.1, 8 for 7.1. */
  channels: number;
}

/** What the planner needs to know about one source file. */
export interface LadderSource {
  /** Container duration in seconds; null when unknown. */
  durationSec: number | null;
  /** null: no video stream (attached cover art does not count: it is not a video). */
  video: LadderSourceVideo | null;
  /** null: no audio stream. */
  audio: LadderSourceAudio | null;
}

/** Operator settings; read and validated once by the config layer, passed down. */
export interface LadderSettings {
  /**
   * Offer a 1440p rung (sources at least that large).
   * @default false
   */
  enable1440p: boolean;
  /**
   * Offer a 2160p rung (sources at least that large).
   * @default false
   */
  enable2160p: boolean;
  /**
   * Lowest total bitrate (video cap + audio, what the variant's `BANDWIDTH` adds up) a rung may
   * have, in bits per second. Smaller rungs are dropped. At least 228000 (128 kb/s audio + 100 kb/s).
   * @default 400_000
   */
  minTotalBitrateBps: number;
  /**
   * Highest total bitrate (video cap + audio) a rung may have, in bits per second. Caps above it
   * are cut to it. High enough by default that the fixed ladder with 2160p (16 Mb/s) is not cut;
   * lower it to bound delivery cost.
   * @default 20_000_000
   */
  maxTotalBitrateBps: number;
  /**
   * Segment length in seconds (1-60); also the keyframe interval of every rung.
   * @default 6
   */
  segmentDurationSec: number;
  /**
   * Video codecs; must include 'h264' (the rendition every player plays). 'hevc' and 'av1' add
   * rungs at the same sizes with lower caps.
   * @default ['h264']
   */
  codecs: readonly VideoCodec[];
}

export const DEFAULT_LADDER_SETTINGS: Readonly<LadderSettings> = Object.freeze({
  enable1440p: false,
  enable2160p: false,
  minTotalBitrateBps: 400_000,
  maxTotalBitrateBps: 20_000_000,
  segmentDurationSec: 6,
  codecs: Object.freeze(['h264'] as VideoCodec[]),
});

/** One video rendition. */
export interface Rung {
  /** Unique within the plan: `h264-1080p`. */
  id: string;
  /** Short side in pixels plus `p`: `1080p` (also for portrait 1080x1920), `768p` for a source-size rung. */
  name: string;
  codec: VideoCodec;
  /** H.264 `high`; HEVC and AV1 `main` (8-bit). A ceiling: the encoder may write a lower one. */
  profile: 'high' | 'main';
  /** Always 8-bit 4:2:0 (`-pix_fmt yuv420p`): what every hardware decoder takes. */
  pixelFormat: 'yuv420p';
  /** Even. */
  widthPx: number;
  /** Even. */
  heightPx: number;
  /** Constant output frame rate in frames per second. */
  frameRateFps: number;
  /** The same rate as an exact rational for `-r` / `fps=`: `30000/1001`, `25/1`. */
  frameRate: string;
  /**
   * Frames from one keyframe to the next at most (`-g`): segment duration × frame rate, rounded up.
   * Keyframes themselves are forced at segment boundaries by time, so they fall on the same
   * instants in every rung (the encoder flags are listed at `gopFrames()` in this file).
   */
  gopFrames: number;
  /** Constant rate factor (`-crf`): the quality target; the caps below only clip peaks. */
  crf: number;
  /** Peak rate cap in bits per second (`-maxrate`). */
  maxrateBps: number;
  /** Rate-control buffer in bits (`-bufsize`; a size, not a rate): 2 s of `maxrateBps`. */
  bufsizeBits: number;
  /** Average bitrate the complexity probe predicts, in bits per second; null without a probe. */
  expectedBitrateBps: number | null;
  /** True for the rung that keeps the source's own size (between or below the standard rungs). */
  fromSourceSize: boolean;
}

/** The one audio rendition every video rung refers to (HLS `EXT-X-MEDIA` group). */
export interface AudioPlan {
  codec: 'aac';
  profile: 'LC';
  /** Output channels: always stereo. */
  channels: 2;
  /** Bits per second. */
  bitrateBps: number;
  /** Source channel count when it is downmixed (more than 2 channels, e.g. 6 for 5.1); else null. */
  downmixFromChannels: number | null;
  /** HLS `GROUP-ID` of the rendition. */
  groupId: 'audio';
}

export interface LadderPlan {
  kind: 'video-and-audio' | 'video-only' | 'audio-only';
  /** H.264 rungs largest first, then each extra codec's rungs largest first. Empty for audio-only. */
  rungs: Rung[];
  audio: AudioPlan | null;
  segmentDurationSec: number;
  /**
   * HDR transfer the video is tone-mapped from to SDR BT.709; null for SDR (or no video). Debian's
   * ffmpeg 5.1 has `zscale` and `tonemap`; the usual chain (not yet tried here) is
   * `zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=hable:desat=0,zscale=t=bt709:m=bt709:r=tv,format=yuv420p`
   * (for HLG the first zscale reads `tin=arib-std-b67`).
   */
  toneMapFrom: 'pq' | 'hlg' | null;
  /** 'automated': caps from a measured complexity; 'fixed': from the default table; null: audio only. */
  bitrateMode: 'automated' | 'fixed' | null;
  /** The complexity the caps were planned from (bits per pixel per frame); null for 'fixed'. */
  complexityBpp: number | null;
  /** Human sentences: the source, every rung kept or dropped and why, every cap and where it came from. */
  reasons: string[];
}

/** AAC-LC stereo for every asset: transparent enough for speech and music at HLS sizes. */
export const AUDIO_BITRATE_BPS = 128_000;

/** The CRF of the complexity probe: the H.264 rungs' own, so the probe predicts their size. */
export const COMPLEXITY_PROBE_CRF = 23;

const CRF: Readonly<Record<VideoCodec, number>> = {
  h264: COMPLEXITY_PROBE_CRF,
  // x265's default: about the quality of x264 at 23 (x265 documentation).
  hevc: 28,
  // SVT-AV1's default; a starting point for the bench to tune.
  av1: 35,
};

// Bits an HEVC/AV1 rung needs for the quality of the H.264 one. Common rules of thumb, not measured
// here yet: the bench should confirm them before the optional rungs are turned on anywhere.
const CODEC_EFFICIENCY: Readonly<Record<VideoCodec, number>> = { h264: 1, hevc: 0.7, av1: 0.6 };

const STANDARD_RUNGS = [2160, 1440, 1080, 720, 480, 360] as const;
type StandardRung = (typeof STANDARD_RUNGS)[number];

/**
 * The fixed default ladder (no complexity measured): H.264 caps in bits per second for a 16:9 rung
 * at up to 30 fps. Other sizes scale by pixel count^0.75 from the standard rung at or below them,
 * and frame rates above 30 by (fps / 30)^0.4 (the exponents are explained below the table).
 */
export const FIXED_CAPS_BPS: Readonly<Record<StandardRung, number>> = Object.freeze({
  2160: 16_000_000,
  1440: 9_000_000,
  1080: 5_000_000,
  720: 3_000_000,
  480: 1_500_000,
  360: 800_000,
});

// Bitrate grows slower than pixel count (a smaller frame needs more bits per pixel for the same
// look): the fixed table above follows roughly pixels^0.75 (1080p/480p: 5.06x the pixels, 3.3x the
// bits); sizes between its rows (768p, 180p, 4:3, ultra-wide) follow that curve.
const PIXEL_EXPONENT = 0.75;
// Twice the frames cost about a third more bits, not twice as many: consecutive frames of a faster
// stream differ less. An assumption for the bench to check.
const FPS_EXPONENT = 0.4;
// Automated caps sit this far above the probe's average, so the average scene reaches its CRF and
// only the peaks (which a few sampled seconds may have missed) are clipped.
const CAP_HEADROOM = 1.5;
// Apple's HLS authoring specification: adjacent bit rates should be a factor of 1.5 to 2 apart.
// Closer rungs cost an encode and storage while hardly helping a player choose.
const MIN_STEP_RATIO = 1.5;
// A rung the maximum cuts to less than this many times the bits of the rung below it is dropped.
const STARVED_RATIO = 1.2;
const MIN_VIDEO_CAP_BPS = 100_000;
const MAX_FPS = 60;
const HALVE_ABOVE_FPS = 30;
const HALVE_AT_OR_BELOW_PX = 480;
const FALLBACK_FPS = 30;
const COMPLEXITY_PROBE_SHORT_SIDE_PX = 720;

/**
 * Throws an Error naming the setting and the expected range when `settings` cannot be planned
 * with (the config layer adds the variable name).
 */
export function validateLadderSettings(settings: LadderSettings): void {
  const { minTotalBitrateBps: min, maxTotalBitrateBps: max, segmentDurationSec: seg } = settings;
  const floor = AUDIO_BITRATE_BPS + MIN_VIDEO_CAP_BPS;
  if (!Number.isFinite(seg) || seg < 1 || seg > 60) {
    throw new Error(`ladder segmentDurationSec must be 1 to 60 seconds, got ${seg}`);
  }
  if (!Number.isInteger(min) || min < floor) {
    throw new Error(
      `ladder minTotalBitrateBps must be a whole number of bits per second >= ${floor} (128 kb/s audio + 100 kb/s video), got ${min}`,
    );
  }
  if (!Number.isInteger(max) || max <= min) {
    throw new Error(
      `ladder maxTotalBitrateBps must be a whole number above minTotalBitrateBps (${min}), got ${max}`,
    );
  }
  const known: readonly string[] = ['h264', 'hevc', 'av1'];
  const unknown = settings.codecs.find((c) => !known.includes(c));
  if (unknown !== undefined) {
    throw new Error(`ladder codecs: ${JSON.stringify(unknown)} is not one of h264, hevc, av1`);
  }
  if (!settings.codecs.includes('h264')) {
    throw new Error(
      `ladder codecs must include h264 (the rendition every player plays), got ${settings.codecs.join(',')}`,
    );
  }
  if (new Set(settings.codecs).size !== settings.codecs.length) {
    throw new Error(`ladder codecs lists a codec twice: ${settings.codecs.join(',')}`);
  }
}

/**
 * The size and frame rate the complexity probe encodes at: the 720p rung of this source (its own
 * even size when smaller) at the top rung's frame rate, with x264 at CRF {@link COMPLEXITY_PROBE_CRF},
 * the real encode's preset and no rate cap. The encoder step measures with these; the planner scales
 * from them.
 */
export function complexityProbeFor(video: LadderSourceVideo): {
  widthPx: number;
  heightPx: number;
  frameRateFps: number;
  crf: number;
} {
  const src = evenSourceSize(video);
  const short = Math.min(src.widthPx, src.heightPx, COMPLEXITY_PROBE_SHORT_SIDE_PX);
  return { ...scaledSize(src, short), frameRateFps: topFrameRate(video).fps, crf: COMPLEXITY_PROBE_CRF };
}

/**
 * Plans the ladder for one source. Throws an Error for settings that fail
 * {@link validateLadderSettings}, a complexity that is not a positive number, or a source with
 * neither video nor audio (the probe step refuses those first).
 */
export function planLadder(
  source: LadderSource,
  settings: LadderSettings = DEFAULT_LADDER_SETTINGS,
): LadderPlan {
  validateLadderSettings(settings);
  const reasons: string[] = [];
  const audio = planAudio(source.audio, reasons);
  const segmentDurationSec = settings.segmentDurationSec;
  const video = source.video;
  if (video === null) {
    if (audio === null) throw new Error('the source has neither video nor audio: nothing to plan');
    reasons.unshift('No video stream: an audio-only plan (no video rungs).');
    return {
      kind: 'audio-only',
      rungs: [],
      audio,
      segmentDurationSec,
      toneMapFrom: null,
      bitrateMode: null,
      complexityBpp: null,
      reasons,
    };
  }
  validateVideo(video);

  const audioBps = audio?.bitrateBps ?? 0;
  const fps = topFrameRate(video);
  const intro = `Source video ${video.widthPx}x${video.heightPx} at ${fmtFps(fps.fps)} fps, ${video.dynamicRange.toUpperCase()} ${video.bitDepth}-bit; ${segmentDurationSec} s segments.`;
  const videoReasons = [intro, ...fps.reasons];

  let candidates = chooseSizes(video, settings, fps.fps, videoReasons);
  if (isSingleFrame(video, source.durationSec, fps.fps)) {
    const [top] = candidates;
    videoReasons.push(
      `A single frame: only the top rung (${top!.name}); lower rungs would give a player nothing to switch to.`,
    );
    candidates = [top!];
  }

  const complexity = video.complexityBpp ?? null;
  if (complexity === null) {
    videoReasons.push(
      `Caps from the fixed default ladder (no complexity measured): ${STANDARD_RUNGS.map((h) => `${h}p ${fmtRate(FIXED_CAPS_BPS[h])}`).join(', ')} for 16:9 at up to 30 fps, scaled by pixel count^${PIXEL_EXPONENT} for other sizes and by (fps/30)^${FPS_EXPONENT} above 30 fps.`,
    );
    for (const c of candidates) c.rawCapBps = roundKb(fixedCap(c));
  } else {
    const size = complexityProbeFor(video);
    const probe: Candidate = {
      ...candidates[0]!,
      ...size,
      shortSidePx: Math.min(size.widthPx, size.heightPx),
      fps: fps.fps,
    };
    videoReasons.push(
      `Caps from measured complexity ${complexity} bits per pixel per frame (probe ${size.widthPx}x${size.heightPx} at ${fmtFps(size.frameRateFps)} fps, CRF ${size.crf}: ${fmtRate(complexity * size.widthPx * size.heightPx * size.frameRateFps)}): each rung's expected bitrate is the probe's in the fixed ladder's proportions; cap = ${CAP_HEADROOM}x expected.`,
    );
    for (const c of candidates) {
      c.expectedBps = roundKb(expectedBitrate(c, complexity, probe));
      c.rawCapBps = roundKb(c.expectedBps * CAP_HEADROOM);
    }
  }

  const bounds = {
    minVideoBps: settings.minTotalBitrateBps - audioBps,
    maxVideoBps: settings.maxTotalBitrateBps - audioBps,
  };
  const kept = cutToMaximum(
    keepSpaced(
      dropBelowMinimum(candidates, bounds, settings, audioBps, videoReasons),
      audioBps,
      videoReasons,
    ),
    bounds,
    settings,
    audioBps,
    videoReasons,
  );

  const rungs: Rung[] = [];
  for (const codec of settings.codecs) {
    for (const c of kept) rungs.push(toRung(c, codec, bounds, segmentDurationSec));
  }
  for (const r of rungs) {
    const expected = r.expectedBitrateBps === null ? '' : `expected ${fmtRate(r.expectedBitrateBps)}, `;
    videoReasons.push(
      `${r.id} ${r.widthPx}x${r.heightPx} at ${fmtFps(r.frameRateFps)} fps: ${expected}cap ${fmtRate(r.maxrateBps)}, CRF ${r.crf}, keyframe every ${segmentDurationSec} s (GOP ${r.gopFrames}).`,
    );
  }
  const extra = settings.codecs.filter((c) => c !== 'h264');
  if (extra.length > 0) {
    videoReasons.push(
      `${extra.map((c) => c.toUpperCase()).join(' and ')} rungs at the H.264 sizes, caps ${extra.map((c) => `${CODEC_EFFICIENCY[c]}x`).join(' and ')} the H.264 ones (kept within the bounds).`,
    );
  }

  const toneMapFrom = video.dynamicRange === 'sdr' ? null : video.dynamicRange;
  if (toneMapFrom !== null) {
    videoReasons.push(
      `HDR (${toneMapFrom.toUpperCase()}) tone-mapped to SDR BT.709 8-bit: H.264 High 4:2:0 8-bit cannot carry HDR, and every rung shares one look (HDR HEVC/AV1 rungs are not planned yet).`,
    );
  } else if (video.bitDepth > 8) {
    videoReasons.push(`${video.bitDepth}-bit SDR reduced to 8-bit 4:2:0 (H.264 High).`);
  }

  return {
    kind: audio === null ? 'video-only' : 'video-and-audio',
    rungs,
    audio,
    segmentDurationSec,
    toneMapFrom,
    bitrateMode: complexity === null ? 'fixed' : 'automated',
    complexityBpp: complexity,
    reasons: [...videoReasons, ...reasons],
  };
}

// --- audio ---------------------------------------------------------------------------------------

function planAudio(audio: LadderSourceAudio | null, reasons: string[]): AudioPlan | null {
  if (audio === null) {
    reasons.push('No audio stream: a video-only ladder (no audio group).');
    return null;
  }
  reasons.push(
    `Audio: AAC-LC stereo ${fmtRate(AUDIO_BITRATE_BPS)}, one rendition (group "audio") shared by every video rung.`,
  );
  if (audio.channels > 2) {
    // ffmpeg's -ac 2 (libswresample defaults): centre and surrounds folded in at -3 dB, LFE left out.
    reasons.push(`${channelName(audio.channels)} audio downmixed to stereo (ffmpeg -ac 2).`);
  } else if (audio.channels === 1) {
    reasons.push('Mono audio sent to both stereo channels, so the shared rendition has one layout.');
  }
  return {
    codec: 'aac',
    profile: 'LC',
    channels: 2,
    bitrateBps: AUDIO_BITRATE_BPS,
    downmixFromChannels: audio.channels > 2 ? audio.channels : null,
    groupId: 'audio',
  };
}

function channelName(channels: number): string {
  if (channels === 6) return '5.1';
  if (channels === 8) return '7.1';
  return `${channels}-channel`;
}

// --- video: frame rate ---------------------------------------------------------------------------

interface TopFrameRate {
  fps: number;
  reasons: string[];
}

/** The top rung's constant frame rate. */
function topFrameRate(video: LadderSourceVideo): TopFrameRate {
  const reasons: string[] = [];
  const measured = video.frameRateFps;
  let fps: number;
  if (measured === null || !Number.isFinite(measured) || measured <= 0) {
    fps = FALLBACK_FPS;
    reasons.push(`Frame rate unknown: ${FALLBACK_FPS} fps assumed.`);
  } else if (video.variableFrameRate) {
    // HLS players and a GOP counted in frames want a constant rate: the fps filter duplicates or
    // drops frames to fill it. The whole number nearest the average keeps motion as it was.
    fps = Math.max(1, Math.round(measured));
    reasons.push(
      `Variable frame rate (average ${fmtFps(measured)} fps) made constant at ${fps} fps: segments with a fixed GOP need a constant rate.`,
    );
  } else {
    fps = measured;
  }
  if (fps > MAX_FPS) {
    // Divide by the smallest whole number that reaches 60 or less (120 -> 60, 100 -> 50, 144 -> 48):
    // every output frame is then a source frame at an even cadence, so motion does not judder.
    const divisor = Math.ceil(fps / MAX_FPS - 1e-9);
    const from = fps;
    fps = fps / divisor;
    reasons.push(
      `${fmtFps(from)} fps reduced to ${fmtFps(fps)} fps (every ${divisor}th frame): rungs run at most ${MAX_FPS} fps.`,
    );
  }
  return { fps, reasons };
}

// --- video: sizes --------------------------------------------------------------------------------

/** A rung being planned; caps are filled in step by step. */
interface Candidate {
  name: string;
  shortSidePx: number;
  widthPx: number;
  heightPx: number;
  fps: number;
  fromSourceSize: boolean;
  expectedBps: number | null;
  /** Cap before the bounds. */
  rawCapBps: number;
  /** Cap after the bounds. */
  capBps: number;
}

function evenFloor(n: number): number {
  return Math.max(2, Math.floor(n / 2) * 2);
}

function evenRound(n: number): number {
  return Math.max(2, Math.round(n / 2) * 2);
}

/** The source size rounded DOWN to even (never an upscale): 1921x1081 -> 1920x1080. */
function evenSourceSize(video: LadderSourceVideo): { widthPx: number; heightPx: number } {
  return { widthPx: evenFloor(video.widthPx), heightPx: evenFloor(video.heightPx) };
}

/** The source scaled so its short side is `shortSidePx`; the long side to the nearest even pixel. */
function scaledSize(
  src: { widthPx: number; heightPx: number },
  shortSidePx: number,
): { widthPx: number; heightPx: number } {
  const portrait = src.heightPx > src.widthPx;
  const short = Math.min(src.widthPx, src.heightPx);
  const long = Math.max(src.widthPx, src.heightPx);
  const longOut = Math.min(long, evenRound((long * shortSidePx) / short));
  return portrait ? { widthPx: shortSidePx, heightPx: longOut } : { widthPx: longOut, heightPx: shortSidePx };
}

function chooseSizes(
  video: LadderSourceVideo,
  settings: LadderSettings,
  topFps: number,
  reasons: string[],
): Candidate[] {
  const enabled = STANDARD_RUNGS.filter(
    (h) => (h !== 2160 || settings.enable2160p) && (h !== 1440 || settings.enable1440p),
  );
  const src = evenSourceSize(video);
  const short = Math.min(src.widthPx, src.heightPx);
  const orientation =
    src.heightPx > src.widthPx ? 'portrait, laddered by its width' : 'laddered by its height';
  const heights: { px: number; fromSourceSize: boolean }[] = [];

  const tooLarge = enabled.filter((h) => h > short);
  if (tooLarge.length > 0) {
    reasons.push(
      `${tooLarge.map((h) => `${h}p`).join(', ')} dropped: larger than the source's short side (${short} px, ${orientation}); never upscaled.`,
    );
  }
  const largest = enabled[0]!;
  if (short > largest) {
    const off = [2160, 1440].filter((h) => h > largest && !enabled.includes(h as StandardRung));
    reasons.push(
      `The source (${short} px short side) is scaled down to the largest enabled rung, ${largest}p${off.length > 0 ? ` (${off.map((h) => `${h}p`).join(' and ')} not enabled)` : ''}.`,
    );
  }
  const fitting = enabled.filter((h) => h <= short);
  if (short < largest && !fitting.includes(short as StandardRung)) {
    heights.push({ px: short, fromSourceSize: true });
    const below = fitting[0];
    reasons.push(
      below === undefined
        ? `${short}p: the source (${src.widthPx}x${src.heightPx}) is smaller than the smallest rung (${enabled.at(-1)}p), so its own size is the one rung.`
        : `${short}p: the source's own size (${src.widthPx}x${src.heightPx}) falls between rungs and is kept as the top rung rather than scaled down to ${below}p.`,
    );
  }
  for (const h of fitting) heights.push({ px: h, fromSourceSize: false });

  const halved = topFps > HALVE_ABOVE_FPS ? topFps / 2 : topFps;
  const candidates = heights.map((h, i): Candidate => {
    const size = h.fromSourceSize ? src : scaledSize(src, h.px);
    const fps = i > 0 && h.px <= HALVE_AT_OR_BELOW_PX ? halved : topFps;
    return {
      name: `${h.px}p`,
      shortSidePx: h.px,
      ...size,
      fps,
      fromSourceSize: h.fromSourceSize,
      expectedBps: null,
      rawCapBps: 0,
      capBps: 0,
    };
  });
  const slowed = candidates.filter((c) => c.fps !== topFps);
  if (slowed.length > 0) {
    reasons.push(
      `${slowed.map((c) => c.name).join(', ')} at ${fmtFps(halved)} fps: half the source's ${fmtFps(topFps)} fps for rungs at or below ${HALVE_AT_OR_BELOW_PX}p (small screens and slow networks gain more from bits per frame than from frames).`,
    );
  }
  return candidates;
}

function isSingleFrame(video: LadderSourceVideo, durationSec: number | null, fps: number): boolean {
  if (video.frameCount !== undefined && video.frameCount !== null) return video.frameCount <= 1;
  return durationSec !== null && durationSec * fps < 1.5;
}

// --- video: caps ---------------------------------------------------------------------------------

function nominalPixels(h: StandardRung): number {
  return evenRound((h * 16) / 9) * h;
}

function fixedCap(c: Candidate): number {
  // The standard rung at or below this one anchors the curve (360p for a source below 360p).
  const anchor = STANDARD_RUNGS.find((h) => h <= c.shortSidePx) ?? 360;
  const pixels = c.widthPx * c.heightPx;
  return (
    FIXED_CAPS_BPS[anchor] *
    (pixels / nominalPixels(anchor)) ** PIXEL_EXPONENT *
    Math.max(1, c.fps / 30) ** FPS_EXPONENT
  );
}

/**
 * The probe's measured bitrate, carried to a rung in the proportions of the fixed ladder: one shape
 * for both ladders, and complexity moves the whole ladder up or down. (A film at about 0.07 bpp
 * gets roughly the fixed caps.) Because the audio share is fixed, a cheap ladder's rungs end up
 * closer together in total bitrate, and the spacing and minimum rules thin it out by themselves.
 */
function expectedBitrate(c: Candidate, bpp: number, probe: Candidate): number {
  const probeBps = bpp * probe.widthPx * probe.heightPx * probe.fps;
  return (probeBps * fixedCap(c)) / fixedCap(probe);
}

interface Bounds {
  minVideoBps: number;
  maxVideoBps: number;
}

function dropBelowMinimum(
  candidates: Candidate[],
  bounds: Bounds,
  settings: LadderSettings,
  audioBps: number,
  reasons: string[],
): Candidate[] {
  const kept = candidates.filter((c) => c.rawCapBps >= bounds.minVideoBps);
  const dropped = candidates.filter((c) => c.rawCapBps < bounds.minVideoBps);
  const minimum = fmtRate(settings.minTotalBitrateBps);
  if (kept.length === 0) {
    // Nothing reaches the minimum (a still, a tiny source): one rung, its cap raised. Raising a cap
    // costs nothing, the CRF still decides how many bits are spent.
    const top = candidates[0]!;
    const total = audioBps > 0 ? ' total' : '';
    reasons.push(
      `Every rung's${total} cap falls below the minimum total bitrate (${minimum}): only ${top.name} is kept, its cap raised from ${fmtRate(top.rawCapBps)} to ${fmtRate(bounds.minVideoBps)}.`,
    );
    top.rawCapBps = bounds.minVideoBps;
    return [top];
  }
  if (dropped.length > 0) {
    reasons.push(
      `${dropped.map((c) => `${c.name} (${fmtRate(c.rawCapBps + audioBps)} total)`).join(', ')} dropped: below the minimum total bitrate (${minimum}), the smallest rendition worth making.`,
    );
  }
  return kept;
}

/**
 * Adjacent rungs must be MIN_STEP_RATIO apart in total bitrate (before the maximum): when two are
 * closer, the lower one goes, it would save a player too little.
 */
function keepSpaced(candidates: Candidate[], audioBps: number, reasons: string[]): Candidate[] {
  const kept: Candidate[] = [];
  for (const c of candidates) {
    const upper = kept.at(-1);
    if (upper === undefined || (upper.rawCapBps + audioBps) / (c.rawCapBps + audioBps) >= MIN_STEP_RATIO) {
      kept.push(c);
      continue;
    }
    reasons.push(
      `${c.name} dropped: its ${fmtRate(c.rawCapBps + audioBps)} total is within ${MIN_STEP_RATIO}x of ${upper.name}'s ${fmtRate(upper.rawCapBps + audioBps)} (adjacent rungs should be ${MIN_STEP_RATIO} to 2x apart), so it would save a player too little.`,
    );
  }
  return kept;
}

/**
 * Cuts caps to the maximum. A cut rung left within STARVED_RATIO of the rung below it is dropped:
 * it would spend more pixels on hardly more bits (a 1080p at 720p's bitrate looks worse than the
 * 720p) and give a player no reason to choose it. A milder cut keeps the rung: the maximum is an
 * operator's cost decision, not a reason to leave a gap in the ladder.
 */
function cutToMaximum(
  candidates: Candidate[],
  bounds: Bounds,
  settings: LadderSettings,
  audioBps: number,
  reasons: string[],
): Candidate[] {
  const maximum = fmtRate(settings.maxTotalBitrateBps);
  const kept: Candidate[] = [];
  for (const c of candidates) {
    c.capBps = Math.min(c.rawCapBps, bounds.maxVideoBps);
    if (c.capBps < c.rawCapBps) {
      reasons.push(
        `${c.name}: cap cut from ${fmtRate(c.rawCapBps)} to ${fmtRate(c.capBps)} by the maximum total bitrate (${maximum}).`,
      );
    }
    kept.push(c);
    for (let upper = kept.at(-2); upper !== undefined; upper = kept.at(-2)) {
      const ratio = (upper.capBps + audioBps) / (c.capBps + audioBps);
      if (upper.capBps === upper.rawCapBps || ratio >= STARVED_RATIO) break;
      kept.splice(-2, 1);
      reasons.push(
        `${upper.name} dropped: cut to ${fmtRate(upper.capBps)} by the maximum, it would get less than ${STARVED_RATIO}x the bits of ${c.name} (${fmtRate(c.capBps)}) for more pixels.`,
      );
    }
  }
  return kept;
}

// --- rungs ---------------------------------------------------------------------------------------

function toRung(c: Candidate, codec: VideoCodec, bounds: Bounds, segmentDurationSec: number): Rung {
  const factor = CODEC_EFFICIENCY[codec];
  const maxrateBps = Math.min(bounds.maxVideoBps, Math.max(bounds.minVideoBps, roundKb(c.capBps * factor)));
  return {
    id: `${codec}-${c.name}`,
    name: c.name,
    codec,
    profile: codec === 'h264' ? 'high' : 'main',
    pixelFormat: 'yuv420p',
    widthPx: c.widthPx,
    heightPx: c.heightPx,
    frameRateFps: c.fps,
    frameRate: toRational(c.fps),
    gopFrames: gopFrames(segmentDurationSec, c.fps),
    crf: CRF[codec],
    maxrateBps,
    // VBV guarantee: over any window of T seconds at most maxrate × T + bufsize bits, so a 6 s
    // segment stays under 1.33x the cap while a hard scene can still borrow 2 s worth.
    bufsizeBits: maxrateBps * 2,
    expectedBitrateBps: c.expectedBps === null ? null : roundKb(c.expectedBps * factor),
    fromSourceSize: c.fromSourceSize,
  };
}

/**
 * Frames between keyframes at most: segment × fps rounded up, passed as `-g` so the encoder's own
 * interval never fires before the forced keyframe (x264's default keyint of 250 would, at 60 fps).
 * The keyframes themselves are forced by time, identical in every rung whatever its frame rate,
 * and scene cuts must not add any (checked on ffmpeg 5.1, see NOTES.md):
 *   libx264:   -g <gopFrames> -sc_threshold 0 -force_key_frames "expr:gte(t,n_forced*<segmentSec>)"
 *   libx265:   the same -g and -force_key_frames, plus -x265-params scenecut=0 (-sc_threshold is not
 *              passed to x265)
 *   libsvtav1: -g <gopFrames> -svtav1-params scd=0; whether ffmpeg 5.1's wrapper honours forced
 *              keyframes and a rate cap with CRF is NOT verified: check before enabling AV1 rungs.
 */
function gopFrames(segmentDurationSec: number, fps: number): number {
  return Math.ceil(segmentDurationSec * fps - 1e-6);
}

/** 29.97002997 -> 30000/1001, 25 -> 25/1, 12.5 -> 25/2. */
function toRational(fps: number): string {
  const ntsc = fps * 1.001;
  if (Math.abs(ntsc - Math.round(ntsc)) < 1e-6 && Math.abs(fps - Math.round(fps)) > 1e-6) {
    return `${Math.round(ntsc) * 1000}/1001`;
  }
  if (Math.abs(fps - Math.round(fps)) < 1e-9) return `${Math.round(fps)}/1`;
  const num = Math.round(fps * 1000);
  const d = gcd(num, 1000);
  return `${num / d}/${1000 / d}`;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

// --- checks and formatting -----------------------------------------------------------------------

function validateVideo(video: LadderSourceVideo): void {
  const { widthPx, heightPx } = video;
  if (!Number.isFinite(widthPx) || !Number.isFinite(heightPx) || widthPx < 2 || heightPx < 2) {
    throw new Error(`video size must be at least 2x2 pixels, got ${widthPx}x${heightPx}`);
  }
  const bpp = video.complexityBpp;
  if (bpp !== undefined && bpp !== null && !(Number.isFinite(bpp) && bpp > 0)) {
    throw new Error(`complexityBpp must be a positive number of bits per pixel per frame, got ${bpp}`);
  }
}

function roundKb(bps: number): number {
  return Math.round(bps / 1000) * 1000;
}

function fmtRate(bps: number): string {
  return bps >= 1_000_000 ? `${Number((bps / 1e6).toFixed(2))} Mb/s` : `${Math.round(bps / 1000)} kb/s`;
}

function fmtFps(fps: number): string {
  return String(Number(fps.toFixed(3)));
}
