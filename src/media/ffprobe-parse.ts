import { AppError } from '../errors.js';

// Pure: ffprobe's `-show_format -show_streams -print_format json` output -> what the video pipeline
// needs to know, and the refusals that follow from it. ffprobe prints some numbers as JSON numbers
// (width, channels) and others as strings (duration, bit_rate, nb_frames, sample_rate), and "N/A",
// "0/0" or nothing at all when it does not know; every reader below accepts all of those.

/** The video stream the pipeline encodes from. */
export interface ProbedVideoStream {
  /** The stream's index in the file (ffprobe's `index`, usable as `-map 0:<index>`). */
  index: number;
  /** ffprobe's decoder name: `h264`, `hevc`, `vp9`, `av1`, `prores`, ... */
  codec: string;
  /** `High`, `Main 10`, `Profile 0`, ...; `null` when the codec has none. */
  profile: string | null;
  /** `yuv420p`, `yuv420p10le`, ...; always known for a decodable stream. */
  pixelFormat: string;
  /** Bits per sample (8, 10, 12, ...): `bits_per_raw_sample`, else read from the pixel format. */
  bitDepth: number | null;
  /** Size of the stored (coded, cropped) picture. */
  width: number;
  height: number;
  /**
   * Size a player shows: the sample aspect ratio applied to the width (anamorphic sources), then
   * width and height swapped when the rotation is 90 or 270.
   */
  displayWidth: number;
  displayHeight: number;
  /**
   * Degrees counter-clockwise the stored picture is turned for display, 0, 90, 180 or 270: the
   * display-matrix convention ffprobe 5.1 prints in `side_data_list[].rotation` and ffmpeg's
   * autorotate applies. The legacy `rotate` tag counts clockwise and is converted.
   */
  rotation: 0 | 90 | 180 | 270;
  /** `avg_frame_rate` (frames / duration); `null` when unknown. */
  avgFrameRate: number | null;
  /** `r_frame_rate`, the base rate all timestamps fit on; `null` when unknown. */
  baseFrameRate: number | null;
  /** The rate to plan with: the average, else the base rate. */
  frameRate: number | null;
  /** The average and base rates differ by more than {@link VFR_TOLERANCE} (phones, screen captures). */
  variableFrameRate: boolean;
  /** `nb_frames` from the container's index; `null` when the container does not say (WebM, MKV). */
  frameCount: number | null;
  /** Fields are interlaced (`field_order` tt, bb, tb or bt). */
  interlaced: boolean;
  color: {
    primaries: string | null;
    transfer: string | null;
    matrix: string | null;
    range: string | null;
  };
  /** `pq` for SMPTE ST 2084 (HDR10, Dolby Vision profile 8.1), `hlg` for ARIB STD-B67; `null` for SDR. */
  hdr: 'pq' | 'hlg' | null;
  /** BT.2020 primaries (HDR and wide-gamut SDR alike). */
  wideGamut: boolean;
  /** Bits per second of this stream; `null` when the container does not say (WebM, MKV). */
  bitRate: number | null;
}

/** The audio stream the pipeline encodes from. */
export interface ProbedAudioStream {
  index: number;
  /** `aac`, `opus`, `mp3`, `pcm_s16le`, `flac`, ... */
  codec: string;
  /** `LC`, `HE-AAC`, ...; `null` when the codec has none. */
  profile: string | null;
  channels: number;
  /** `mono`, `stereo`, `5.1`, `5.1(side)`, ...; `null` when unknown (WAV usually). */
  channelLayout: string | null;
  sampleRate: number;
  bitRate: number | null;
}

/** A video or audio stream ffprobe found but could not describe well enough to decode. */
export interface UndecodableStream {
  index: number;
  type: 'video' | 'audio';
  /** ffprobe's codec name; `null` when it does not know the codec at all. */
  codec: string | null;
}

/** ffprobe's view of a video or audio file, as the pipeline uses it. */
export interface VideoProbe {
  /** ffprobe's demuxer name: `mov,mp4,m4a,3gp,3g2,mj2`, `matroska,webm`, `wav`, `mp3`, ... */
  formatName: string;
  /** The container's duration, else the longest stream's; `null` when neither is known. */
  durationSec: number | null;
  /** Overall bits per second of the file; `null` when unknown. */
  bitRate: number | null;
  /**
   * The default (else first) decodable video stream; attached pictures (cover art) and timed
   * thumbnails are not video. `null` for audio-only files.
   */
  video: ProbedVideoStream | null;
  /** The default (else first) decodable audio stream; `null` for silent video. */
  audio: ProbedAudioStream | null;
  /** What the pipeline can decode: `video !== null` and `audio !== null`. */
  decodable: { video: boolean; audio: boolean };
  /** Video and audio streams present but not decodable, to explain a refusal. */
  undecodable: UndecodableStream[];
}

/** Relative difference between average and base frame rate above which a stream counts as variable. */
export const VFR_TOLERANCE = 0.01;

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function field(source: Json, key: string): Json {
  const value = source[key];
  return isObject(value) ? value : {};
}

/** A finite number from a JSON number or a numeric string; `null` for "N/A", absent, garbage. */
function num(value: unknown): number | null {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value !== 'string' || value.trim() === '') return null;
  const parsed = Number(value);
  return Number.isFinite(parsed) ? parsed : null;
}

function nonNegative(value: unknown): number | null {
  const n = num(value);
  return n !== null && n >= 0 ? n : null;
}

function positive(value: unknown): number | null {
  const n = num(value);
  return n !== null && n > 0 ? n : null;
}

/** A non-empty string other than ffprobe's placeholders for "not known". */
function text(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const trimmed = value.trim();
  return trimmed === '' || trimmed === 'unknown' || trimmed === 'N/A' || trimmed === 'none' ? null : trimmed;
}

/** `30000/1001` -> 29.97...; `0/0`, `N/A` -> `null`. Also reads `16:9`-style ratios. */
function rational(value: unknown): number | null {
  if (typeof value !== 'string') return null;
  const match = /^(\d+)[/:](\d+)$/.exec(value.trim());
  if (!match) return null;
  const n = Number(match[1]);
  const d = Number(match[2]);
  return n > 0 && d > 0 ? n / d : null;
}

/** Bit depth from a pixel format name when the stream does not state `bits_per_raw_sample`. */
export function bitDepthOfPixelFormat(pixelFormat: string): number | null {
  // Planar YUV/RGB/grey with an explicit depth: yuv420p10le, gbrp12le, gray10le, yuva444p16be.
  const planar = /^(?:yuvj?a?\d{3}p|gbra?p|gray|ya)(\d+)(?:le|be)$/.exec(pixelFormat);
  if (planar) return Number(planar[1]);
  // Semi-planar high depth: p010le, p016le, p210le, p416le.
  const semi = /^p[0-4](\d\d)(?:le|be)$/.exec(pixelFormat);
  if (semi) return Number(semi[1]);
  // Packed 16-bit-per-channel RGB names count all channels: rgb48le, bgra64be.
  if (/^(?:rgb|bgr)48|^(?:rgba|bgra)64/.test(pixelFormat)) return 16;
  // The 8-bit families carry no number after the layout.
  if (
    /^(?:yuvj?a?\d{3}p|gbra?p|gray|nv12|nv21|nv16|nv24|rgb24|bgr24|rgba|bgra|argb|abgr|rgb0|bgr0)$/.test(
      pixelFormat,
    )
  ) {
    return 8;
  }
  return null;
}

function rotationOf(stream: Json): 0 | 90 | 180 | 270 {
  let counterClockwise: number | null = null;
  const sideData = stream.side_data_list;
  if (Array.isArray(sideData)) {
    for (const entry of sideData) {
      if (isObject(entry) && entry.side_data_type === 'Display Matrix') {
        counterClockwise = num(entry.rotation);
        if (counterClockwise !== null) break;
      }
    }
  }
  if (counterClockwise === null) {
    // ffmpeg before 5.0 exposed the display matrix as a clockwise `rotate` tag (tag = -rotation).
    const tag = num(field(stream, 'tags').rotate);
    counterClockwise = tag === null ? 0 : -tag;
  }
  // Players only turn by quarter turns; the matrix may hold e.g. 89.99 after rounding.
  const quarter = (((Math.round(counterClockwise / 90) % 4) + 4) % 4) as 0 | 1 | 2 | 3;
  return ([0, 90, 180, 270] as const)[quarter];
}

function hdrOf(transfer: string | null): 'pq' | 'hlg' | null {
  if (transfer === 'smpte2084') return 'pq';
  if (transfer === 'arib-std-b67') return 'hlg';
  return null;
}

function isAttachedPicture(stream: Json): boolean {
  const disposition = field(stream, 'disposition');
  return num(disposition.attached_pic) === 1 || num(disposition.timed_thumbnails) === 1;
}

function videoOf(stream: Json): ProbedVideoStream | null {
  const codec = text(stream.codec_name);
  const width = positive(stream.width);
  const height = positive(stream.height);
  const pixelFormat = text(stream.pix_fmt);
  // Without a decoder ffprobe cannot tell the pixel format (nor, often, the size).
  if (codec === null || width === null || height === null || pixelFormat === null) return null;

  const rotation = rotationOf(stream);
  const sar = rational(stream.sample_aspect_ratio) ?? 1;
  const shownWidth = sar === 1 ? width : Math.round(width * sar);
  const quarterTurn = rotation === 90 || rotation === 270;
  const avgFrameRate = rational(stream.avg_frame_rate);
  const baseFrameRate = rational(stream.r_frame_rate);
  const transfer = text(stream.color_transfer);
  const primaries = text(stream.color_primaries);
  const rawBits = positive(stream.bits_per_raw_sample);
  return {
    index: num(stream.index) ?? 0,
    codec,
    profile: text(stream.profile),
    pixelFormat,
    bitDepth: rawBits ?? bitDepthOfPixelFormat(pixelFormat),
    width,
    height,
    displayWidth: quarterTurn ? height : shownWidth,
    displayHeight: quarterTurn ? shownWidth : height,
    rotation,
    avgFrameRate,
    baseFrameRate,
    frameRate: avgFrameRate ?? baseFrameRate,
    variableFrameRate:
      avgFrameRate !== null &&
      baseFrameRate !== null &&
      Math.abs(avgFrameRate - baseFrameRate) / baseFrameRate > VFR_TOLERANCE,
    frameCount: positive(stream.nb_frames),
    interlaced: ['tt', 'bb', 'tb', 'bt'].includes(text(stream.field_order) ?? ''),
    color: {
      primaries,
      transfer,
      matrix: text(stream.color_space),
      range: text(stream.color_range),
    },
    hdr: hdrOf(transfer),
    wideGamut: primaries === 'bt2020',
    bitRate: positive(stream.bit_rate),
  };
}

function audioOf(stream: Json): ProbedAudioStream | null {
  const codec = text(stream.codec_name);
  const channels = positive(stream.channels);
  const sampleRate = positive(stream.sample_rate);
  if (codec === null || channels === null || sampleRate === null) return null;
  return {
    index: num(stream.index) ?? 0,
    codec,
    profile: text(stream.profile),
    channels,
    channelLayout: text(stream.channel_layout),
    sampleRate,
    bitRate: positive(stream.bit_rate),
  };
}

/** The stream marked default, else the first; players pick the same one. */
function choose<T>(candidates: ReadonlyArray<{ stream: Json; parsed: T }>): T | null {
  const preferred = candidates.find((c) => num(field(c.stream, 'disposition').default) === 1);
  return (preferred ?? candidates[0])?.parsed ?? null;
}

/** Reads ffprobe's JSON (already `JSON.parse`d). Never throws: what it cannot read is `null`. */
export function parseFfprobeOutput(output: unknown): VideoProbe {
  const root = isObject(output) ? output : {};
  const format = field(root, 'format');
  const streams = (Array.isArray(root.streams) ? root.streams : []).filter(isObject);

  const videos: Array<{ stream: Json; parsed: ProbedVideoStream }> = [];
  const audios: Array<{ stream: Json; parsed: ProbedAudioStream }> = [];
  const undecodable: UndecodableStream[] = [];
  for (const stream of streams) {
    const index = num(stream.index) ?? 0;
    if (stream.codec_type === 'video' && !isAttachedPicture(stream)) {
      const parsed = videoOf(stream);
      if (parsed) videos.push({ stream, parsed });
      else undecodable.push({ index, type: 'video', codec: text(stream.codec_name) });
    } else if (stream.codec_type === 'audio') {
      const parsed = audioOf(stream);
      if (parsed) audios.push({ stream, parsed });
      else undecodable.push({ index, type: 'audio', codec: text(stream.codec_name) });
    }
  }

  const streamDurations = streams.map((s) => nonNegative(s.duration)).filter((d): d is number => d !== null);
  const video = choose(videos);
  const audio = choose(audios);
  return {
    formatName: text(format.format_name) ?? 'unknown',
    durationSec:
      nonNegative(format.duration) ?? (streamDurations.length ? Math.max(...streamDurations) : null),
    bitRate: positive(format.bit_rate),
    video,
    audio,
    decodable: { video: video !== null, audio: audio !== null },
    undecodable,
  };
}

/** `3725.5` -> `1 h 2 min 5.5 s`; `3600` -> `1 h`. */
export function humanDuration(seconds: number): string {
  const tenths = Math.round(seconds * 10);
  const h = Math.floor(tenths / 36_000);
  const min = Math.floor((tenths % 36_000) / 600);
  const s = (tenths % 600) / 10;
  const parts = [h ? `${h} h` : '', min ? `${min} min` : '', s ? `${s} s` : ''].filter(Boolean);
  return parts.length ? parts.join(' ') : '0 s';
}

export interface ProbeLimits {
  /** The project's `maxVideoDurationSec`; `null` = no limit. */
  maxDurationSec: number | null;
}

/**
 * Why the pipeline must not process this file, as an error a user can act on; `null` when it can.
 * A one-frame video and an audio-only file are fine.
 */
export function probeRefusal(probe: VideoProbe, limits: ProbeLimits): AppError | null {
  if (!probe.video && !probe.audio) {
    if (probe.undecodable.length === 0) {
      return new AppError('MEDIA_INVALID', 'The file contains no video or audio stream.');
    }
    const which = probe.undecodable
      .slice(0, 3)
      .map((s) => `${s.type} stream #${s.index} (${s.codec ?? 'unknown codec'})`)
      .join(', ');
    return new AppError(
      'MEDIA_INVALID',
      `None of the file's streams can be decoded here: ${which}. Export it with a common codec such as H.264 or AAC.`,
    );
  }
  const max = limits.maxDurationSec;
  if (max === null) return null;
  if (probe.durationSec === null) {
    // Processing a file of unknown length could run far past the limit the project set.
    return new AppError(
      'MEDIA_INVALID',
      `The file does not say how long it lasts, so the project's limit of ${humanDuration(max)} cannot be checked. Re-export it as MP4 or WebM.`,
    );
  }
  if (probe.durationSec > max) {
    return new AppError(
      'DURATION_TOO_LONG',
      `The file lasts ${humanDuration(probe.durationSec)}; this project accepts at most ${humanDuration(max)} (limit maxVideoDurationSec).`,
    );
  }
  return null;
}

// ffprobe's errors for files it cannot open, most specific first. The first match gives the reason.
const FAILURES: ReadonlyArray<{ pattern: RegExp; reason: string }> = [
  {
    pattern: /moov atom not found/,
    reason:
      'The MP4/MOV file is incomplete: its index (the "moov atom") is missing, usually because the upload or the recording stopped before the end.',
  },
  {
    pattern: /EBML header parsing failed/,
    reason: 'The WebM/Matroska file is damaged: its header cannot be read.',
  },
  {
    pattern: /Protocol '[^']*' not on whitelist/,
    reason: 'The file refers to other files or network addresses, which are not read.',
  },
  {
    pattern: /Invalid data found when processing input/,
    reason: 'The file is not a video or audio file: no known format matches its contents.',
  },
];

// Not the file's fault: a missing source or an unreadable path is a server problem, not a refusal.
const SERVER_SIDE = /No such file or directory|Permission denied|Is a directory/;

/**
 * Maps the stderr of an ffprobe that exited with an error to a refusal a user understands, or
 * `null` when the failure is the server's (missing or unreadable source). `input` (the argument
 * ffprobe was given) is removed from the text so no server path reaches a user.
 */
export function ffprobeFailure(stderrTail: string, input: string, cause?: unknown): AppError | null {
  const stderr = input ? stderrTail.split(input).join('') : stderrTail;
  if (SERVER_SIDE.test(stderr)) return null;
  const known = FAILURES.find((f) => f.pattern.test(stderr));
  if (known) return new AppError('MEDIA_INVALID', known.reason, { cause });
  const lastLine =
    stderr
      .trim()
      .split('\n')
      .pop()
      // "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d5c0b8a240] " and the ": " left where the path was.
      ?.replace(/^\[[^\]]* @ 0x[0-9a-f]+\]\s*/, '')
      .replace(/^:\s*/, '')
      .trim() ?? '';
  return new AppError(
    'MEDIA_INVALID',
    `The file cannot be read as video or audio${lastLine ? ` (${lastLine})` : ''}.`,
    { cause },
  );
}

/**
 * A refusal when ffmpeg's errors (stderr at `-v error`) show the source itself is cut short, or
 * null. ffmpeg conceals damaged frames and exits 0, so without this a file cut at 85 % of its
 * bytes (its index intact: faststart) was published with its end missing.
 */
export function sourceDamage(stderr: string): AppError | null {
  if (/partial file/.test(stderr)) {
    return new AppError(
      'MEDIA_INVALID',
      'The file is truncated: its video and audio data end before the end its header announces, usually because the upload or the recording stopped early. Upload the complete file.',
    );
  }
  return null;
}
