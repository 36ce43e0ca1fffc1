import { join } from 'node:path';
import type { AudioPlan, LadderPlan, Rung } from '../domain/ladder.js';
import { run } from './ffmpeg.js';
import { ProgressParser, progressPercent } from './ffmpeg-progress.js';
import { sourceDamage } from './ffprobe-parse.js';

// One ffmpeg process encodes a whole ladder: the source is decoded once (and tone-mapped once when
// it is HDR), `split` hands every rung its own copy of each frame, and every rung is scaled, encoded
// with capped-CRF x264 and cut into CMAF (fMP4) segments at the same instants. The audio is encoded
// once, as its own rendition. On ffmpeg 5.1 this costs about 0.66x the wall time of one process per
// rung (NOTES.md), and the keyframes of all rungs fall on the same timestamps by construction.
//
// Muxer: ffmpeg's `hls` muxer (`-hls_segment_type fmp4` + `-var_stream_map`), not the `dash` muxer
// with `-hls_playlist 1`. Both were run on the same 854x480 + 640x360 + AAC clip here (ffmpeg 5.1):
//   - the fMP4 segments are the same either way (styp, sidx, moof with tfdt, mdat: byte-identical
//     sizes), so an MPD can be written over the hls muxer's segments as well as the dash muxer's;
//   - the dash muxer refuses to put 854x480 and 640x360 in one adaptation set ("Conflicting stream
//     aspect ratios": 427:240 is not 16:9) — the default ladder's 480p rung — and with one adaptation
//     set per rung a DASH player cannot switch between them, so its MPD could not be published as is;
//   - its HLS playlists lack EXT-X-PLAYLIST-TYPE:VOD and EXT-X-INDEPENDENT-SEGMENTS, carry wall-clock
//     EXT-X-PROGRAM-DATE-TIME lines, and put every rung's files in one flat directory;
//   - the hls muxer wrote per-rung directories, an init segment per rung, VOD playlists with
//     EXT-X-INDEPENDENT-SEGMENTS and exact 2.000000 s video segments.
// So: the hls muxer writes segments and media playlists; assetpipe writes the master (hls-master.ts,
// from measured sizes) and the MPD itself, both over these segments. ffmpeg's own master is not
// written at all (its BANDWIDTH is wrong, see hls-master.ts), so it cannot be published by mistake.
//
// Output layout under `outDir` (see `ladderOutputLayout`):
//   <rung.id>/index.m3u8, <rung.id>/init_<rung.id>.mp4, <rung.id>/seg-00000.m4s, seg-00001.m4s, ...
//   audio/index.m3u8,     audio/init_audio.mp4,         audio/seg-00000.m4s, ...
// (the hls muxer names a variant's init segment after the variant when there are several; `%v` in
// the name makes that name readable instead of `init_<index>.mp4`).
//
// Every track starts at presentation time 0, in browsers as in ffmpeg. By default ffmpeg makes the
// hls muxer's timestamps non-negative by shifting every stream by x264's B-frame delay (66 ms at
// 30 fps, veryfast: the first decode time is -2 frames), and each fMP4 track then records that start
// as an empty edit in its init segment (video 66 ms, audio 45 ms after AAC's 21 ms priming). ffmpeg
// honours empty edits; Chromium (and so hls.js) ignores them: video was buffered from 0.0667 s and
// audio ran ~45 ms ahead of it. So:
//   - `-avoid_negative_ts disabled`: no shift. The video's first frame keeps pts 0 (decode time
//     -2 frames) and its init segment gets one edit, no empty one: media time = the B-frame delay,
//     the usual MP4 way of saying "the first frame is shown at 0", which Chromium applies;
//   - the audio is moved later by the AAC encoder's priming (1024 samples: ffmpeg's native encoder)
//     before it is encoded, so its first packet, the priming, lands at 0 instead of -21 ms and its
//     track needs no edit that trims it. An edit that trims the priming (what the mp4 muxer writes
//     without this) started both tracks at 0 in Chromium too, but hls.js 1.7 then stalled one frame
//     to 0.2 s before the end and never reached `ended`. The cost: the 21 ms of priming are shown, so
//     the sound lags the picture by 21 ms (it led it by 45 ms before).
// Measured here (ffmpeg 5.1, 854x480 + 640x360 + AAC at 30 fps, and 60 + 30 fps rungs): ffprobe reads
// every rendition from pts 0 and the keyframes of all rungs at 0, 2, 4... s; in Chromium + hls.js
// 1.7 both source buffers start at 0 and playback reaches `ended` without an error. The encoded
// sizes are unchanged. Tried and not used:
//   - `-hls_segment_options movflags=+negative_cts_offsets:use_editlist=0` (CMAF-style negative
//     composition offsets, no edit list at all): right in Chromium, but ffmpeg's mov demuxer reads
//     such a track from +2 frames (its `dts_shift`), 33 ms at 60 fps and 67 ms at 30 fps, so to
//     ffmpeg the rungs' keyframes no longer line up;
//   - `negative_cts_offsets` alone: 0 in Chromium only because it ignores the 66 ms empty edit that
//     is still written; ffmpeg honours it (and the `dts_shift`) and reads the video from 0.133 s;
//   - `use_editlist=0` alone, `-avoid_negative_ts make_zero`, `-output_ts_offset 0.0667`: the
//     video still starts at 0.0667 s in Chromium;
//   - `-bf 0`: still a 21 ms empty edit (the priming then sets the shift), and 14-19 % larger rungs.
// Also known: the audio ends with a ~21 ms segment (AAC frames of 1024 samples do not end on the
// segment boundary).

/** x264 presets, fastest first. */
export type X264Preset =
  | 'ultrafast'
  | 'superfast'
  | 'veryfast'
  | 'faster'
  | 'fast'
  | 'medium'
  | 'slow'
  | 'slower'
  | 'veryslow';

export interface LadderEncodeOptions {
  /** The source file. */
  input: string;
  /** Directory the package is written to (created by ffmpeg). Must not contain `%`. */
  outDir: string;
  /**
   * The source's constant frame rate in frames per second (`ProbedVideoStream.frameRate`); `null`
   * when it is variable or unknown. A rung whose rate differs gets an `fps` filter; with `null`
   * every rung gets one, which makes the output constant whatever the source does.
   */
  sourceFrameRateFps: number | null;
  /**
   * ffprobe's index of the video stream to encode (`ProbedVideoStream.index`).
   * @default the first video stream
   */
  videoStreamIndex?: number;
  /**
   * ffprobe's index of the audio stream to encode (`ProbedAudioStream.index`).
   * @default the first audio stream
   */
  audioStreamIndex?: number;
  /**
   * x264 preset of every H.264 rung; the bench compares against plain ffmpeg at the same preset.
   * HEVC rungs get the x265 preset of the same name, AV1 rungs an SVT-AV1 preset of about the
   * same speed (`SVT_AV1_PRESET`).
   * @default 'veryfast'
   */
  preset?: X264Preset;
}

/** Where one rendition's media playlist and files are, relative to `outDir` and absolute. */
export interface RenditionOutput {
  /** Variant name and directory: the rung id (`h264-720p`) or `audio`. */
  name: string;
  /** The media playlist, relative to `outDir`: `h264-720p/index.m3u8`. */
  playlist: string;
  /** Absolute path of the rendition's directory. */
  dir: string;
}

export interface LadderOutputLayout {
  /** One per rung, in the plan's order. */
  rungs: (RenditionOutput & { rungId: string })[];
  /** The shared audio rendition; null for a video-only plan. */
  audio: RenditionOutput | null;
}

const AUDIO_NAME = 'audio';
/** The samples of priming ffmpeg's native AAC encoder puts before the audio (its `initial_padding`). */
const AAC_PRIMING_SAMPLES = 1024;
const PLAYLIST = 'index.m3u8';
// `%v` is the variant name (`-var_stream_map ... name:`), `%05d` the segment number.
const SEGMENT_TEMPLATE = 'seg-%05d.m4s';
const INIT_TEMPLATE = 'init_%v.mp4';

/** The files `ladderEncodeArgs` makes ffmpeg write, per rendition. Pure. */
export function ladderOutputLayout(plan: LadderPlan, outDir: string): LadderOutputLayout {
  const rendition = (name: string): RenditionOutput => ({
    name,
    playlist: `${name}/${PLAYLIST}`,
    dir: join(outDir, name),
  });
  return {
    rungs: plan.rungs.map((r) => ({ ...rendition(r.id), rungId: r.id })),
    audio: plan.audio === null ? null : rendition(AUDIO_NAME),
  };
}

/** What every encode of the ladder starts with (before its inputs). Pure. */
export function ffmpegCommonArgs(): string[] {
  return [
    '-hide_banner',
    // Errors only: the stderr tail attached to a failure should show the error, not x264's stats.
    '-v',
    'error',
    // Never wait for a key press (stdin is closed anyway) and overwrite what a failed attempt left.
    '-nostdin',
    '-y',
    // Machine-readable progress blocks on stdout (ffmpeg-progress.ts) instead of the status line.
    '-progress',
    'pipe:1',
    '-nostats',
  ];
}

/**
 * The ffmpeg arguments (no `ffmpeg` itself) that encode `plan` from `options.input` into CMAF
 * segments and VOD media playlists under `options.outDir`, with `-progress pipe:1` on stdout. Pure.
 * Throws an Error for a plan with nothing to encode or an `outDir` containing `%` (the muxer's
 * templates would expand it).
 */
export function ladderEncodeArgs(plan: LadderPlan, options: LadderEncodeOptions): string[] {
  if (plan.rungs.length === 0 && plan.audio === null) {
    throw new Error('the ladder plan has neither video rungs nor audio: nothing to encode');
  }
  const seg = plan.segmentDurationSec;
  const args = [
    ...ffmpegCommonArgs(),
    // `file:` keeps a name beginning with "-" or containing "proto:" from being read as anything
    // else. ffmpeg autorotates while decoding (display matrix), so frames arrive at the display size
    // the plan's rung sizes are computed from.
    '-i',
    `file:${options.input}`,
  ];

  if (plan.rungs.length > 0) {
    args.push('-filter_complex', videoFilterGraph(plan, options));
    plan.rungs.forEach((rung, i) => {
      args.push('-map', `[v${i}]`, ...rungEncoderArgs(rung, i, options.preset ?? 'veryfast'));
    });
    // A keyframe at the first frame at or after every multiple of the segment duration: the same
    // instants in every rung whatever its frame rate, and the hls muxer cuts segments there.
    args.push(...forcedKeyframeArgs(`gte(t,n_forced*${seg})`));
  }

  if (plan.audio !== null) {
    const source = options.audioStreamIndex === undefined ? '0:a:0' : `0:${options.audioStreamIndex}`;
    args.push(...audioEncodeArgs(plan.audio, source));
  }
  args.push(...hlsOutputArgs(plan, options.outDir));
  return args;
}

/**
 * Keyframes only where `expression` (a `-force_key_frames expr:`) forces them, for every video
 * stream of the output file that follows. Pure.
 */
export function forcedKeyframeArgs(expression: string): string[] {
  return [
    // No scene-cut keyframes: they would differ between rungs and split segments unevenly.
    '-sc_threshold:v',
    '0',
    '-force_key_frames:v',
    `expr:${expression}`,
  ];
}

/** Maps input stream `source` (`0:a:0`, `1:3`) to the ladder's one AAC rendition. Pure. */
export function audioEncodeArgs(audio: AudioPlan, source: string): string[] {
  return [
    '-map',
    source,
    // ffmpeg's native AAC encoder writes AAC-LC unless told otherwise (5.1's generic -profile
    // has no AAC names to say it with).
    '-c:a',
    'aac',
    '-b:a',
    String(audio.bitrateBps),
    // Stereo for every source: 5.1 is downmixed (centre and surrounds at -3 dB, LFE left out),
    // mono is sent to both channels, so the one shared rendition has one layout.
    '-ac',
    String(audio.channels),
    // Later by the encoder's priming (1024 samples), so that the first AAC packet is at 0, not at
    // -21 ms: the audio track then needs no edit (see the top of this file).
    '-af',
    `asetpts=PTS+${AAC_PRIMING_SAMPLES}/SR/TB`,
  ];
}

/**
 * The output half of the command: the `hls` muxer writing the layout of `ladderOutputLayout` from
 * the mapped video streams (the plan's rungs, in order) and audio. Pure. Throws an Error for an
 * `outDir` containing `%` (the muxer's templates would expand it).
 */
export function hlsOutputArgs(plan: LadderPlan, outDir: string): string[] {
  if (outDir.includes('%')) {
    throw new Error(`outDir must not contain "%" (ffmpeg's segment templates expand it), got ${outDir}`);
  }
  const layout = ladderOutputLayout(plan, outDir);
  const variants = [
    ...layout.rungs.map((r, i) => `v:${i},name:${r.name}`),
    ...(layout.audio === null ? [] : [`a:0,name:${layout.audio.name}`]),
  ];
  return [
    // No shift by the B-frame delay: every track starts at presentation time 0 without an empty edit
    // (see the top of this file).
    '-avoid_negative_ts',
    'disabled',
    // No container tags or chapters from the source (a phone's GPS position stays private).
    '-map_metadata',
    '-1',
    '-map_chapters',
    '-1',
    '-f',
    'hls',
    '-hls_time',
    String(plan.segmentDurationSec),
    // VOD: every segment stays listed (no sliding window) and the playlist ends with EXT-X-ENDLIST.
    '-hls_playlist_type',
    'vod',
    // CMAF-style fragmented MP4 (init segment + .m4s), which DASH can reference too.
    '-hls_segment_type',
    'fmp4',
    // Every segment starts with a keyframe (forced above), so players may start anywhere.
    '-hls_flags',
    'independent_segments',
    '-hls_fmp4_init_filename',
    // ffmpeg 5.1 expands `%v` here only when there are several variants: an audio-only plan (or one
    // rung without audio) would get a file literally named `init_%v.mp4`.
    variants.length === 1
      ? INIT_TEMPLATE.replace('%v', (layout.audio ?? layout.rungs[0]!).name)
      : INIT_TEMPLATE,
    '-hls_segment_filename',
    join(outDir, '%v', SEGMENT_TEMPLATE),
    // One variant per rung and one for the audio: the audio cannot be mapped into two variants
    // (NOTES.md), so it is its own rendition that assetpipe's master links to every rung. No
    // `-master_pl_name`: ffmpeg's master would carry the rate cap as BANDWIDTH.
    '-var_stream_map',
    variants.join(' '),
    join(outDir, '%v', PLAYLIST),
  ];
}

/** Where a filter graph differs from the one-piece encode's (a chunk's graph, chunk-encode.ts). */
export interface VideoGraphShape {
  /** Filters on the source's frames before the tone map and the split. @default none */
  head?: readonly string[];
  /**
   * A rung's timing filters (frame rate, trims, timestamps), before its scale.
   * @default `fps` when the rung's rate differs from the source's ({@link rungFrameRateFilters})
   */
  timing?: (rung: Rung) => string[];
}

/**
 * `[0:v]` -> (tone map) -> split -> per rung: fps (when it differs), scale, setsar -> `[v<i>]`.
 * The tone map runs once, before the split: every rung shares one SDR look for one conversion's cost.
 * Pure.
 */
export function videoFilterGraph(
  plan: LadderPlan,
  options: Pick<LadderEncodeOptions, 'videoStreamIndex' | 'sourceFrameRateFps'>,
  shape: VideoGraphShape = {},
): string {
  const source = options.videoStreamIndex === undefined ? '0:v:0' : `0:${options.videoStreamIndex}`;
  const timing = shape.timing ?? ((rung: Rung) => rungFrameRateFilters(rung, options.sourceFrameRateFps));
  const shared: string[] = [...(shape.head ?? [])];
  if (plan.toneMapFrom !== null) shared.push(...toneMapFilters(plan.toneMapFrom));
  const n = plan.rungs.length;
  const branches = plan.rungs.map((rung, i) => {
    const input = n === 1 ? '' : `[s${i}]`;
    return `${input}${[...timing(rung), ...rungScaleFilters(rung)].join(',')}[v${i}]`;
  });
  if (n === 1) {
    return `[${source}]${[...shared, branches[0]].join(',')}`;
  }
  const split = `split=${n}${plan.rungs.map((_, i) => `[s${i}]`).join('')}`;
  return [`[${source}]${[...shared, split].join(',')}`, ...branches].join(';');
}

/** The one-piece encode's rate conversion of a rung: none when the source already runs at its rate. */
export function rungFrameRateFilters(rung: Rung, sourceFps: number | null): string[] {
  // Before the scale, so a halved rate scales half the frames. The fps filter duplicates or drops
  // frames to a constant rate (also what makes a variable-rate source constant).
  if (sourceFps === null || Math.abs(sourceFps - rung.frameRateFps) > 1e-6) {
    return [`fps=${rung.frameRate}`];
  }
  return [];
}

function rungScaleFilters(rung: Rung): string[] {
  return [
    `scale=${rung.widthPx}:${rung.heightPx}`,
    // scale keeps the display aspect by changing the sample aspect (854x480 from 1920x1080 would get
    // 1280:1281); square pixels are what players and the master's RESOLUTION assume.
    'setsar=1',
  ];
}

/**
 * HDR (PQ or HLG) to SDR BT.709 with zscale + tonemap (Hable). Run here on PQ and HLG test clips
 * (ffmpeg 5.1): no errors, BT.709 tagged output. How it looks on real HDR footage is not judged yet.
 */
export function toneMapFilters(from: 'pq' | 'hlg'): string[] {
  const transfer = from === 'pq' ? 'smpte2084' : 'arib-std-b67';
  return [
    // To linear light (nominal peak 100 nits = SDR white); the input transfer named explicitly.
    `zscale=tin=${transfer}:t=linear:npl=100`,
    // Float RGB for the gamut conversion and the tone curve.
    'format=gbrpf32le',
    'zscale=p=bt709',
    'tonemap=hable:desat=0',
    // Back to BT.709 transfer and matrix, limited range, 8-bit 4:2:0.
    'zscale=t=bt709:m=bt709:r=tv',
    'format=yuv420p',
  ];
}

// SVT-AV1 presets (0 slowest .. 13 fastest) for the x264 preset the ladder runs at: 10-12 are the
// ones usable on a CPU. Rough match, measured once on 4 s of 720p here (ffmpeg 5.1, SVT-AV1 1.4.1):
// x264 veryfast 3.0 s, x265 veryfast 5.7 s, SVT 12 3.5 s, 11 3.9 s, 10 4.3 s, 8 6.4 s.
const SVT_AV1_PRESET: Readonly<Record<X264Preset, number>> = {
  ultrafast: 12,
  superfast: 12,
  veryfast: 11,
  faster: 10,
  fast: 10,
  medium: 8,
  slow: 6,
  slower: 5,
  veryslow: 4,
};

/** Encoder options for output video stream `i` (`:v:<i>` addresses the i-th video stream). */
function rungEncoderArgs(rung: Rung, i: number, preset: X264Preset): string[] {
  const v = `:v:${i}`;
  // Capped CRF: quality-defined, with the peaks clipped by the VBV (maxrate + bufsize).
  const cappedCrf = [`-crf${v}`, String(rung.crf), `-maxrate${v}`, String(rung.maxrateBps)];
  const vbv = [`-bufsize${v}`, String(rung.bufsizeBits)];
  const pixelFormat = [`-pix_fmt${v}`, rung.pixelFormat];
  // Every encoder keeps its own keyframe interval at least a segment long, so only the forced
  // keyframes (-force_key_frames, the same instants for every rung) start GOPs.
  const gop = String(rung.gopFrames);
  switch (rung.codec) {
    case 'h264':
      return [
        `-c${v}`,
        'libx264',
        `-preset${v}`,
        preset,
        // A ceiling: x264 writes High only when it uses High's tools (it does at veryfast and slower).
        `-profile${v}`,
        rung.profile,
        ...pixelFormat,
        ...cappedCrf,
        ...vbv,
        // x264 clamps keyint_min to keyint/2+1; with scene cuts off (-sc_threshold 0) it only keeps
        // x264 from placing an IDR on its own.
        `-g${v}`,
        gop,
        `-keyint_min${v}`,
        gop,
      ];
    case 'hevc':
      return [
        `-c${v}`,
        'libx265',
        `-preset${v}`,
        preset,
        // 8-bit Main; x265 writes no higher profile than asked.
        `-profile${v}`,
        rung.profile,
        ...pixelFormat,
        ...cappedCrf,
        ...vbv,
        // `hvc1` sample entry (parameter sets in the init segment only): Safari and Apple devices
        // play HEVC in fMP4 only under hvc1, Chromium takes it too; ffmpeg's default is hev1.
        `-tag${v}`,
        'hvc1',
        // Without it libx265 turns a forced keyframe into a non-IDR I frame whose packet is not
        // flagged as a keyframe (ffmpeg 5.1): the hls muxer does not cut there, and x265 places its
        // own IDR at keyint (checked here: -g 45 at 30 fps gave keyframes at 0 and 1.5 s instead of
        // 0 and 1 s; with forced-idr, 0 and 1 s).
        `-forced-idr${v}`,
        '1',
        // -sc_threshold does not reach x265: scenecut=0 turns its scene cuts off. Closed GOPs, so a
        // segment decodes without the one before. Only errors on stderr (x265 prints its settings).
        `-x265-params${v}`,
        `log-level=error:scenecut=0:open-gop=0:keyint=${gop}:min-keyint=${gop}`,
      ];
    case 'av1':
      return [
        `-c${v}`,
        'libsvtav1',
        `-preset${v}`,
        String(SVT_AV1_PRESET[preset]),
        // Main: 8- and 10-bit 4:2:0 (SVT-AV1 writes nothing else for yuv420p).
        `-profile${v}`,
        rung.profile,
        ...pixelFormat,
        // Capped CRF: ffmpeg 5.1 passes -maxrate to SVT-AV1 1.4.1 as its max bit rate, which makes
        // its rate control "capped CRF" (its own log says so). -bufsize is not passed on by 5.1's
        // wrapper: SVT sizes its own buffer, so the VBV of the other codecs is not guaranteed here.
        ...cappedCrf,
        `-g${v}`,
        gop,
        // enable-force-key-frames: without it SVT-AV1 ignores ffmpeg's forced keyframes (checked:
        // -g 45 at 30 fps gave 0 and 1.5 s; with it 0, 1, 2, 3 s and no others). scd=0: no scene-cut
        // keyframes. irefresh-type=2: closed-GOP key frames, not forward keyframes.
        // SVT-AV1 writes its banner to stderr whatever ffmpeg's -v says: `run` sets SVT_LOG=1.
        `-svtav1-params${v}`,
        'enable-force-key-frames=1:scd=0:irefresh-type=2',
      ];
  }
}

export interface EncodeLadderOptions extends LadderEncodeOptions {
  /** The source's duration in seconds, for the per cent; null: no progress until the end (100). */
  durationSec: number | null;
  /** Called with whole per cents, each value at most once, increasing; 100 when ffmpeg finishes. */
  onProgress?: (percent: number) => void;
  timeoutMs: number;
  signal?: AbortSignal;
}

/**
 * Runs the one ffmpeg process of {@link ladderEncodeArgs} and resolves with where it wrote each
 * rendition. Rejects with a `ToolError` (stderr tail attached) when ffmpeg fails, times out or is
 * aborted; a partly written `outDir` is the caller's to remove.
 */
export async function encodeLadder(
  plan: LadderPlan,
  options: EncodeLadderOptions,
): Promise<LadderOutputLayout> {
  await runWithProgress(ladderEncodeArgs(plan, options), options);
  return ladderOutputLayout(plan, options.outDir);
}

export interface ProgressRunOptions {
  /** The output's expected duration in seconds, for the per cent; null: only 100 at the end. */
  durationSec: number | null;
  /** Called with whole per cents, each value at most once, increasing; 100 when ffmpeg finishes. */
  onProgress?: ((percent: number) => void) | undefined;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
}

/**
 * Runs ffmpeg with `args` (which print `-progress pipe:1`, as {@link ffmpegCommonArgs} does) and
 * reports whole per cents of `durationSec`. Rejects with a `ToolError` as `run` does, and with a
 * `MEDIA_INVALID` AppError when ffmpeg's errors show the input is truncated (it exits 0 then).
 */
export async function runWithProgress(args: readonly string[], options: ProgressRunOptions): Promise<void> {
  const parser = new ProgressParser();
  let last = -1;
  const report = (percent: number) => {
    if (percent <= last) return;
    last = percent;
    // A failing callback must not kill the encode: progress is informational.
    try {
      options.onProgress?.(percent);
    } catch {}
  };
  const { stderr } = await run('ffmpeg', args, {
    timeoutMs: options.timeoutMs,
    signal: options.signal,
    onStdout: (chunk) => {
      for (const snapshot of parser.push(chunk)) {
        const percent = progressPercent(snapshot, options.durationSec);
        if (percent !== null) report(percent);
      }
    },
  });
  const damage = sourceDamage(stderr);
  if (damage) throw damage;
  // ffmpeg prints `progress=end` before it exits; a zero exit without it still means done.
  report(100);
}

// Exported apart from its declaration: chunk-encode.ts gives each rung's chunk file the very encoder
// options of the one-piece encode.
export { rungEncoderArgs };
