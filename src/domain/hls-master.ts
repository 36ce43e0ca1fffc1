// The HLS master playlist, written by assetpipe itself from measured segment sizes.
//
// ffmpeg 5.1's hls muxer writes BANDWIDTH from the rate cap (with CRF alone: only the audio
// bitrate) and omits AVERAGE-BANDWIDTH and FRAME-RATE, so its master cannot be published. Here the
// master is computed from what was actually written: each media playlist's segment durations and
// byte sizes, as RFC 8216 section 4.3.4.2 and Apple's HLS authoring spec define them:
//   - BANDWIDTH >= the peak segment bit rate (audio rendition included), within 10 % of it;
//   - AVERAGE-BANDWIDTH within 10 % of the average segment bit rate.
// We write the measured values rounded up, so both hold with no margin to tune.
//
// Pure: numbers and strings in, playlist text out. Reading sizes from storage is the caller's job.

/** One media segment as written: its EXTINF duration and its size on storage. */
export interface MeasuredSegment {
  durationSec: number;
  bytes: number;
}

/** A media playlist and the segments it lists, in order (init segments excluded). */
export interface MeasuredMedia {
  /** The media playlist's URI as the master references it (relative to the master). */
  uri: string;
  segments: readonly MeasuredSegment[];
  /**
   * The playlist's EXT-X-TARGETDURATION; it bounds the windows the peak is measured over.
   * @default the smallest valid one: the longest segment rounded to the nearest integer (at least 1)
   */
  targetDurationSec?: number;
}

export interface VideoRungMedia {
  /** Rung name for error messages (`1080p`); not written to the playlist. */
  name: string;
  width: number;
  height: number;
  /** Frames per second, e.g. 60000 / 1001; written with three decimals. */
  frameRate: number;
  /** RFC 6381 codec of the video stream alone (`avc1.640028`), see {@link codecString}. */
  videoCodecs: string;
  /** Segments hold video only when audio is a separate rendition, video + audio when muxed. */
  media: MeasuredMedia;
}

/** The one audio rendition group shared by every video rung (or the whole of an audio-only package). */
export interface AudioRenditionMedia {
  kind: 'rendition';
  /** GROUP-ID, e.g. `aud`. */
  groupId: string;
  /** NAME shown by players, e.g. `English`. */
  name: string;
  /** RFC 5646 tag (`en`); omitted from the playlist when unknown. */
  language?: string;
  /** Channel count (2 after the stereo downmix). */
  channels: number;
  /** RFC 6381 codec, e.g. `mp4a.40.2`. */
  codecs: string;
  media: MeasuredMedia;
}

/** Audio carried inside the video segments: its bytes are already in the rung's sizes. */
export interface MuxedAudio {
  kind: 'muxed';
  codecs: string;
}

export interface MasterPlaylistInput {
  /** Video rungs in any order; they are written sorted by BANDWIDTH, lowest first. Empty = audio only. */
  rungs: readonly VideoRungMedia[];
  /** Undefined for a video-only ladder. */
  audio?: AudioRenditionMedia | MuxedAudio;
}

export interface VariantBandwidth {
  /** BANDWIDTH in bit/s: peak segment bit rate, audio rendition's peak added, rounded up. */
  bandwidth: number;
  /** AVERAGE-BANDWIDTH in bit/s: total bits / total duration, audio's average added, rounded up. */
  averageBandwidth: number;
}

/**
 * Rounds a bit rate up to whole bit/s. Float division turns exact integers into 1000000.0000000001,
 * which a plain ceil would write as 1000001; values within a millionth of a bit/s of an integer are
 * taken as that integer.
 */
export function roundUpBitrate(bitsPerSecond: number): number {
  return Math.ceil(bitsPerSecond - 1e-6);
}

function checkSegments(media: MeasuredMedia): void {
  if (media.segments.length === 0)
    throw new RangeError(`media playlist ${media.uri}: expected segments, got none`);
  media.segments.forEach((segment, i) => {
    if (!Number.isFinite(segment.durationSec) || segment.durationSec <= 0) {
      throw new RangeError(
        `media playlist ${media.uri}, segment ${i}: expected a duration > 0 s, got ${segment.durationSec}`,
      );
    }
    if (!Number.isSafeInteger(segment.bytes) || segment.bytes < 0) {
      throw new RangeError(
        `media playlist ${media.uri}, segment ${i}: expected a byte size >= 0, got ${segment.bytes}`,
      );
    }
  });
}

/** EXT-X-TARGETDURATION's smallest valid value: every EXTINF rounded to nearest must fit (RFC 8216 4.3.3.1). */
export function minimumTargetDuration(segments: readonly MeasuredSegment[]): number {
  return Math.max(1, ...segments.map((segment) => Math.round(segment.durationSec)));
}

/**
 * Peak segment bit rate in bit/s, unrounded, as RFC 8216 section 4.1 defines it: the largest bit
 * rate of any contiguous run of segments whose total duration is between 0.5 and 1.5 times the
 * target duration. With segments of the target length that is the busiest single segment; the
 * window keeps a ~21 ms trailing segment (ffmpeg's audio tail), all container overhead, from
 * posing as the peak. A playlist shorter than half the target has no such run: its whole length
 * is the only window.
 */
export function peakSegmentBitrate(segments: readonly MeasuredSegment[], targetDurationSec: number): number {
  const low = 0.5 * targetDurationSec;
  const high = 1.5 * targetDurationSec;
  let peak = 0;
  let found = false;
  for (let start = 0; start < segments.length; start++) {
    let bits = 0;
    let duration = 0;
    for (let end = start; end < segments.length; end++) {
      const segment = segments[end]!;
      bits += segment.bytes * 8;
      duration += segment.durationSec;
      if (duration > high) break;
      if (duration >= low) {
        found = true;
        peak = Math.max(peak, bits / duration);
      }
    }
  }
  return found ? peak : averageBitrate(segments);
}

/** Total bits over total duration, in bit/s, unrounded. */
export function averageBitrate(segments: readonly MeasuredSegment[]): number {
  let bits = 0;
  let duration = 0;
  for (const segment of segments) {
    bits += segment.bytes * 8;
    duration += segment.durationSec;
  }
  return duration > 0 ? bits / duration : 0;
}

function mediaBitrates(media: MeasuredMedia): { peak: number; average: number } {
  const target = media.targetDurationSec ?? minimumTargetDuration(media.segments);
  return { peak: peakSegmentBitrate(media.segments, target), average: averageBitrate(media.segments) };
}

/**
 * BANDWIDTH and AVERAGE-BANDWIDTH of a variant: its own media playlist plus, when audio is a
 * separate rendition, that rendition's peak and average (RFC 8216 4.3.4.2: the largest sum of peak
 * rates of any playable combination of renditions). Rounded up, never down.
 */
export function variantBandwidth(media: MeasuredMedia, audioRendition?: MeasuredMedia): VariantBandwidth {
  checkSegments(media);
  const own = mediaBitrates(media);
  let peak = own.peak;
  let average = own.average;
  if (audioRendition) {
    checkSegments(audioRendition);
    const audio = mediaBitrates(audioRendition);
    peak += audio.peak;
    average += audio.average;
  }
  return { bandwidth: roundUpBitrate(peak), averageBandwidth: roundUpBitrate(average) };
}

// RFC 8216 4.2: a quoted-string cannot contain a double quote, CR or LF, and there is no escape.
// Values that would need one are refused rather than mangled.
function quoted(attribute: string, value: string): string {
  if (value === '' || /["\r\n]/.test(value)) {
    throw new RangeError(
      `${attribute}: expected a non-empty value without '"', CR or LF, got ${JSON.stringify(value)}`,
    );
  }
  return `"${value}"`;
}

// GROUP-ID and CODECS entries are restricted further than the RFC requires, to what we produce.
function token(attribute: string, value: string): string {
  if (!/^[A-Za-z0-9._-]+$/.test(value)) {
    throw new RangeError(
      `${attribute}: expected letters, digits, '.', '_' or '-', got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

function codecList(values: readonly string[]): string {
  const entries = values.flatMap((value) => value.split(',')).map((entry) => entry.trim());
  return quoted('CODECS', entries.map((entry) => token('CODECS', entry)).join(','));
}

// A URI line must not be read as a tag or comment (lines starting with '#') nor split a line.
function uriLine(uri: string): string {
  if (uri === '' || uri.startsWith('#') || /[\r\n]/.test(uri) || uri.trim() !== uri) {
    throw new RangeError(
      `media playlist URI: expected a non-empty URI without CR/LF, not starting with '#', got ${JSON.stringify(uri)}`,
    );
  }
  return uri;
}

function positiveInteger(what: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0)
    throw new RangeError(`${what}: expected an integer > 0, got ${value}`);
  return value;
}

function frameRateText(rung: VideoRungMedia): string {
  if (!Number.isFinite(rung.frameRate) || rung.frameRate <= 0) {
    throw new RangeError(`rung ${rung.name}: expected a frame rate > 0, got ${rung.frameRate}`);
  }
  // RFC 8216 4.3.4.2: FRAME-RATE is the maximum frame rate rounded to three decimal places.
  return rung.frameRate.toFixed(3);
}

interface VariantLine {
  bandwidth: VariantBandwidth;
  /** Resolution height for a stable order among equal bandwidths. */
  height: number;
  text: string;
}

/**
 * Writes the master playlist: version 7, independent segments, the audio group when audio is a
 * separate rendition, one EXT-X-STREAM-INF per rung sorted by BANDWIDTH (lowest first). An
 * audio-only package (no rungs) gets one variant pointing at the audio playlist.
 * Throws RangeError for input that cannot be written as a valid playlist.
 */
export function writeMasterPlaylist(input: MasterPlaylistInput): string {
  const { rungs, audio } = input;
  const lines = ['#EXTM3U', '#EXT-X-VERSION:7', '#EXT-X-INDEPENDENT-SEGMENTS'];

  if (rungs.length === 0) {
    if (audio?.kind !== 'rendition') {
      throw new RangeError('master playlist: expected video rungs or an audio rendition, got neither');
    }
    // Audio only: the audio playlist is the one variant; no EXT-X-MEDIA group is needed.
    const bandwidth = variantBandwidth(audio.media);
    lines.push(
      `#EXT-X-STREAM-INF:BANDWIDTH=${bandwidth.bandwidth},AVERAGE-BANDWIDTH=${bandwidth.averageBandwidth},` +
        `CODECS=${codecList([audio.codecs])}`,
      uriLine(audio.media.uri),
    );
    return `${lines.join('\n')}\n`;
  }

  const rendition = audio?.kind === 'rendition' ? audio : undefined;
  if (rendition) {
    const attributes = [
      'TYPE=AUDIO',
      `GROUP-ID=${quoted('GROUP-ID', token('GROUP-ID', rendition.groupId))}`,
      `NAME=${quoted('NAME', rendition.name)}`,
      ...(rendition.language === undefined ? [] : [`LANGUAGE=${quoted('LANGUAGE', rendition.language)}`]),
      'DEFAULT=YES',
      'AUTOSELECT=YES',
      `CHANNELS=${quoted('CHANNELS', String(positiveInteger('CHANNELS', rendition.channels)))}`,
      `URI=${quoted('URI', uriLine(rendition.media.uri))}`,
    ];
    lines.push(`#EXT-X-MEDIA:${attributes.join(',')}`);
  }

  const variants: VariantLine[] = rungs.map((rung) => {
    const bandwidth = variantBandwidth(rung.media, rendition?.media);
    // RFC 8216 4.3.4.2: CODECS lists every format in the variant, audio of its AUDIO group included.
    const codecs = audio ? [rung.videoCodecs, audio.codecs] : [rung.videoCodecs];
    const attributes = [
      `BANDWIDTH=${bandwidth.bandwidth}`,
      `AVERAGE-BANDWIDTH=${bandwidth.averageBandwidth}`,
      `CODECS=${codecList(codecs)}`,
      `RESOLUTION=${positiveInteger(`rung ${rung.name} width`, rung.width)}x${positiveInteger(`rung ${rung.name} height`, rung.height)}`,
      `FRAME-RATE=${frameRateText(rung)}`,
      ...(rendition ? [`AUDIO=${quoted('AUDIO', rendition.groupId)}`] : []),
    ];
    return {
      bandwidth,
      height: rung.height,
      text: `#EXT-X-STREAM-INF:${attributes.join(',')}\n${uriLine(rung.media.uri)}`,
    };
  });
  variants.sort((a, b) => a.bandwidth.bandwidth - b.bandwidth.bandwidth || a.height - b.height);
  lines.push(...variants.map((variant) => variant.text));
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------
// RFC 6381 codec strings from ffprobe facts.

/** What ffprobe reports about a stream (`codec_name`, `profile`, `level`), plus optional detail. */
export interface ProbedCodec {
  /** ffprobe `codec_name`: `h264`, `hevc`, `av1` or `aac`. */
  codecName: string;
  /** ffprobe `profile`, e.g. `High`, `Main 10`, `Main` (AV1), `LC`. */
  profile: string;
  /**
   * ffprobe `level`: H.264 level_idc (40 for 4.0), HEVC general_level_idc (120 for 4.0, i.e.
   * 30 × level), AV1 seq_level_idx (0 for 2.0, 8 for 4.0, 31 for "no level"); unused for audio.
   */
  level?: number;
  /**
   * H.264 only: the constraint_set flags byte from the SPS (avcC byte 2). ffprobe does not print
   * it; it depends on the encoder (x264 sets 0x40 for Main, 0xC0 for Baseline, 0 for High).
   * Constrained Baseline always gets constraint_set1 (0x40) added.
   * @default 0
   */
  constraintFlags?: number;
  /** HEVC only. @default 'L' (Main tier) */
  tier?: 'L' | 'H';
  /**
   * HEVC only: the six general constraint indicator bytes.
   * @default [0x90] (progressive source, frame only: what x265 writes for progressive video)
   */
  constraintBytes?: readonly number[];
  /** HEVC only: the sample entry; Apple devices need `hvc1`. @default 'hvc1' */
  sampleEntry?: 'hvc1' | 'hev1';
  /** AV1 only: seq_tier_0 of the av1C record, `M` (Main) or `H` (High). @default 'M' */
  av1Tier?: 'M' | 'H';
  /** AV1 only: bits per sample (av1C high_bitdepth / twelve_bit): 8, 10 or 12. @default 8 */
  bitDepth?: number;
}

const H264_PROFILES: Record<string, { idc: number; flags: number }> = {
  Baseline: { idc: 66, flags: 0 },
  // Constrained Baseline is Baseline with constraint_set1_flag (H.264 A.2.1.1).
  'Constrained Baseline': { idc: 66, flags: 0x40 },
  Main: { idc: 77, flags: 0 },
  Extended: { idc: 88, flags: 0 },
  High: { idc: 100, flags: 0 },
  'High 10': { idc: 110, flags: 0 },
  'High 4:2:2': { idc: 122, flags: 0 },
  'High 4:4:4 Predictive': { idc: 244, flags: 0 },
};

// H.264 Table A-1 level_idc values (9 is level 1b in the High profiles).
const H264_LEVELS = new Set([9, 10, 11, 12, 13, 20, 21, 22, 30, 31, 32, 40, 41, 42, 50, 51, 52, 60, 61, 62]);

// HEVC general_profile_idc; the compatibility flags are the ones encoders set (Main decoders are
// also Main 10 decoders, so x265 sets flags 1 and 2 for Main).
const HEVC_PROFILES: Record<string, { idc: number; compatibility: number }> = {
  Main: { idc: 1, compatibility: (1 << 1) | (1 << 2) },
  'Main 10': { idc: 2, compatibility: 1 << 2 },
  'Main Still Picture': { idc: 3, compatibility: (1 << 1) | (1 << 2) | (1 << 3) },
};

// HEVC Table A.8 general_level_idc = 30 × level.
const HEVC_LEVELS = new Set([30, 60, 63, 90, 93, 120, 123, 150, 153, 156, 180, 183, 186]);

// AV1 seq_profile as ffprobe names it (AV1 specification 6.4.1).
const AV1_PROFILES: Record<string, number> = { Main: 0, High: 1, Professional: 2 };

// AV1 seq_level_idx: 0-23 are levels 2.0 to 7.3 (Annex A.3), 31 is "no level constraint".
const AV1_LEVELS = new Set([...Array.from({ length: 24 }, (_, i) => i), 31]);

// ISO/IEC 14496-3 audio object types as ffprobe names the AAC profiles.
const AAC_OBJECT_TYPES: Record<string, number> = { LC: 2, 'HE-AAC': 5, 'HE-AACv2': 29 };

const hex2 = (value: number) => value.toString(16).padStart(2, '0');

function requireLevel(codec: ProbedCodec, levels: Set<number>): number {
  if (codec.level === undefined || !levels.has(codec.level)) {
    throw new RangeError(
      `${codec.codecName} level: expected one of ${[...levels].join(', ')} (ffprobe's level_idc), got ${codec.level}`,
    );
  }
  return codec.level;
}

function unsupportedProfile(codec: ProbedCodec, known: object): RangeError {
  return new RangeError(
    `${codec.codecName} profile: expected one of ${Object.keys(known).join(', ')}, got ${JSON.stringify(codec.profile)}`,
  );
}

function avcCodecString(codec: ProbedCodec): string {
  const profile = H264_PROFILES[codec.profile];
  if (!profile) throw unsupportedProfile(codec, H264_PROFILES);
  const flags = codec.constraintFlags ?? profile.flags;
  if (!Number.isInteger(flags) || flags < 0 || flags > 0xff) {
    throw new RangeError(`h264 constraint flags: expected a byte, got ${flags}`);
  }
  // avc1.PPCCLL: profile_idc, constraint flags byte, level_idc, each two hex digits (RFC 6381 3.3).
  return `avc1.${hex2(profile.idc)}${hex2(flags | profile.flags)}${hex2(requireLevel(codec, H264_LEVELS))}`;
}

// Bit j of the 32 general_profile_compatibility_flags, written in reverse bit order as ISO/IEC
// 14496-15 E.3 asks: flag j becomes bit j of the number, so Main (flags 1, 2) is 6.
function hevcCodecString(codec: ProbedCodec): string {
  const profile = HEVC_PROFILES[codec.profile];
  if (!profile) throw unsupportedProfile(codec, HEVC_PROFILES);
  const level = requireLevel(codec, HEVC_LEVELS);
  const bytes = [...(codec.constraintBytes ?? [0x90])];
  if (bytes.length > 6 || bytes.some((byte) => !Number.isInteger(byte) || byte < 0 || byte > 0xff)) {
    throw new RangeError(`hevc constraint bytes: expected up to six bytes, got ${JSON.stringify(bytes)}`);
  }
  // Trailing zero bytes are left out (E.3).
  while (bytes.length > 0 && bytes.at(-1) === 0) bytes.pop();
  const parts = [
    codec.sampleEntry ?? 'hvc1',
    String(profile.idc), // general_profile_space 0 has no prefix letter
    profile.compatibility.toString(16).toUpperCase(),
    `${codec.tier ?? 'L'}${level}`,
    ...bytes.map((byte) => byte.toString(16).toUpperCase()),
  ];
  return parts.join('.');
}

// av01.P.LLT.DD (AV1 Codec ISO Media File Format Binding, "Codecs Parameter String"): profile,
// two-digit seq_level_idx, tier, two-digit bit depth. The optional fields after it (monochrome,
// chroma subsampling, colour) are left out: their defaults (4:2:0, BT.709) are what is encoded.
function av1CodecString(codec: ProbedCodec): string {
  const profile = AV1_PROFILES[codec.profile];
  if (profile === undefined) throw unsupportedProfile(codec, AV1_PROFILES);
  const level = requireLevel(codec, AV1_LEVELS);
  const bitDepth = codec.bitDepth ?? 8;
  if (![8, 10, 12].includes(bitDepth)) {
    throw new RangeError(`av1 bit depth: expected 8, 10 or 12, got ${bitDepth}`);
  }
  const tier = codec.av1Tier ?? 'M';
  return `av01.${profile}.${String(level).padStart(2, '0')}${tier}.${String(bitDepth).padStart(2, '0')}`;
}

function aacCodecString(codec: ProbedCodec): string {
  const objectType = AAC_OBJECT_TYPES[codec.profile];
  if (objectType === undefined) throw unsupportedProfile(codec, AAC_OBJECT_TYPES);
  // mp4a.40.N: MPEG-4 audio (object type indication 0x40), audio object type N (RFC 6381 3.3).
  return `mp4a.40.${objectType}`;
}

/**
 * RFC 6381 codec string for a probed stream: `avc1.640028` (H.264 High 4.0), `hvc1.1.6.L120.90`
 * (HEVC Main 4.0), `av01.0.08M.08` (AV1 Main 4.0, 8-bit), `mp4a.40.2` (AAC-LC). Throws RangeError
 * for codecs, profiles or levels it does not know rather than writing a string a player would
 * misread.
 */
export function codecString(codec: ProbedCodec): string {
  switch (codec.codecName) {
    case 'h264':
      return avcCodecString(codec);
    case 'hevc':
      return hevcCodecString(codec);
    case 'av1':
      return av1CodecString(codec);
    case 'aac':
      return aacCodecString(codec);
    default:
      throw new RangeError(`codec: expected h264, hevc, av1 or aac, got ${JSON.stringify(codec.codecName)}`);
  }
}
