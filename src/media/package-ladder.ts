import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type DashAudioRepresentation,
  type DashSegment,
  type DashVideoRepresentation,
  writeDashManifest,
} from '../domain/dash-mpd.js';
import {
  type AudioRenditionMedia,
  codecString,
  type MeasuredMedia,
  type ProbedCodec,
  type VideoRungMedia,
  variantBandwidth,
  writeMasterPlaylist,
} from '../domain/hls-master.js';
import { type Finding, resolvePackageUri, validateHlsPackage } from '../domain/hls-validate.js';
import type { LadderPlan } from '../domain/ladder.js';
import { type RunOptions, run } from './ffmpeg.js';
import type { LadderOutputLayout, RenditionOutput } from './ladder-encode.js';

// Packaging, after encodeLadder: the media playlists and segments the hls muxer wrote are measured
// (EXTINF durations from the playlists, byte sizes from the files), each rendition is probed for
// its codec string and timescale, and assetpipe writes the two manifests over the same segments:
// `master.m3u8` (hls-master.ts) and `manifest.mpd` (dash-mpd.ts). Then the HLS package is
// validated (hls-validate.ts) as a player would find it.
//
// A missing or empty media segment does not stop packaging: it is counted as 0 bytes, both
// manifests are still written and the validator names the file. Findings mean "do not publish".
// Only what makes the manifests impossible to write throws: an unreadable media playlist, a missing
// init segment, a rendition with no segment left to probe.

const MASTER = 'master.m3u8';
const MPD = 'manifest.mpd';

export interface PackageLadderOptions extends RunOptions {
  plan: LadderPlan;
  /** What `encodeLadder` returned for `plan`. */
  layout: LadderOutputLayout;
  /** The directory `encodeLadder` wrote to; the manifests are written there too. */
  outDir: string;
  /** The source's duration: every media playlist must add up to it within 0.5 s. */
  expectedDurationSec: number;
  /** RFC 5646 tag of the audio (`en`); left out of both manifests when unknown. */
  audioLanguage?: string;
}

export interface PackagedVariant {
  /** The rung id (`h264-480p`), or `audio` for the one variant of an audio-only package. */
  id: string;
  /** Pixels; 0 for the audio-only variant. */
  width: number;
  /** Pixels; 0 for the audio-only variant. */
  height: number;
  /** BANDWIDTH as written to the master (bit/s, audio rendition included). */
  bandwidth: number;
  /** AVERAGE-BANDWIDTH as written to the master (bit/s, audio rendition included). */
  averageBandwidth: number;
  /** CODECS as written to the master: video, then audio (`avc1.64001f,mp4a.40.2`); audio alone for audio only. */
  codecs: string;
}

export interface PackagedLadder {
  /** Absolute path of the HLS master playlist. */
  masterPath: string;
  /** Absolute path of the DASH MPD. */
  mpdPath: string;
  /** What validateHlsPackage found; empty means the package may be published. */
  findings: Finding[];
  /** One per video rung, in the plan's order; for an audio-only plan, the one audio variant. */
  variants: PackagedVariant[];
}

/** A media playlist as the hls muxer wrote it, with the size of every file it lists. */
interface ReadRendition {
  output: RenditionOutput;
  /** Package path of the playlist (`h264-480p/index.m3u8`), which is also its URI from the master. */
  playlistPath: string;
  text: string;
  targetDurationSec: number;
  /** EXT-X-MAP URI as written (relative to the playlist) and its package path. */
  init: { uri: string; path: string };
  segments: { uri: string; path: string; durationSec: number }[];
  /** Byte size by package path; absent: the file does not exist. */
  sizes: Map<string, number>;
}

interface ProbedTrack {
  codecs: string;
  timescale: number;
  width: number;
  height: number;
  sampleRate: number;
  channels: number;
}

/**
 * Measures, probes and writes the manifests of a ladder `encodeLadder` wrote, then validates the
 * HLS package. Rejects (an Error naming the file) when a playlist or an init segment is missing or a
 * rendition has no segment to probe, and with a `ToolError` when ffprobe fails.
 */
export async function packageLadder(options: PackageLadderOptions): Promise<PackagedLadder> {
  const { plan, layout, outDir } = options;
  if (layout.rungs.length !== plan.rungs.length) {
    throw new Error(`layout lists ${layout.rungs.length} rungs, the plan ${plan.rungs.length}`);
  }
  const rungs = await Promise.all(layout.rungs.map((output) => readRendition(outDir, output)));
  const audio = layout.audio === null ? null : await readRendition(outDir, layout.audio);
  // One probe at a time: each decodes only headers, and two cores are busy enough.
  const rungProbes: ProbedTrack[] = [];
  for (const rendition of rungs) rungProbes.push(await probeTrack(outDir, rendition, 'video', options));
  const audioProbe = audio === null ? null : await probeTrack(outDir, audio, 'audio', options);

  const audioMedia: AudioRenditionMedia | undefined =
    audio === null || audioProbe === null || plan.audio === null
      ? undefined
      : {
          kind: 'rendition',
          groupId: plan.audio.groupId,
          name: 'Audio',
          ...(options.audioLanguage === undefined ? {} : { language: options.audioLanguage }),
          channels: audioProbe.channels,
          codecs: audioProbe.codecs,
          media: measuredMedia(audio),
        };
  const rungMedia: VideoRungMedia[] = rungs.map((rendition, i) => ({
    name: rendition.output.name,
    width: rungProbes[i]!.width,
    height: rungProbes[i]!.height,
    frameRate: plan.rungs[i]!.frameRateFps,
    videoCodecs: rungProbes[i]!.codecs,
    media: measuredMedia(rendition),
  }));
  const masterText = writeMasterPlaylist({ rungs: rungMedia, ...(audioMedia ? { audio: audioMedia } : {}) });

  const mpdText = writeDashManifest({
    video: rungs.map(
      (rendition, i): DashVideoRepresentation => ({
        id: plan.rungs[i]!.id,
        codecs: rungProbes[i]!.codecs,
        timescale: rungProbes[i]!.timescale,
        initialization: rendition.init.path,
        segments: dashSegments(rendition),
        width: rungProbes[i]!.width,
        height: rungProbes[i]!.height,
        frameRate: plan.rungs[i]!.frameRate,
      }),
    ),
    ...(audio && audioProbe
      ? {
          audio: {
            id: audio.output.name,
            codecs: audioProbe.codecs,
            timescale: audioProbe.timescale,
            initialization: audio.init.path,
            segments: dashSegments(audio),
            sampleRate: audioProbe.sampleRate,
            channels: audioProbe.channels,
            ...(options.audioLanguage === undefined ? {} : { language: options.audioLanguage }),
          } satisfies DashAudioRepresentation,
        }
      : {}),
  });

  const masterPath = join(outDir, MASTER);
  const mpdPath = join(outDir, MPD);
  await writeFile(masterPath, masterText);
  await writeFile(mpdPath, mpdText);

  const renditions = [...rungs, ...(audio ? [audio] : [])];
  const sizes = new Map(renditions.flatMap((rendition) => [...rendition.sizes]));
  const rungVariants: PackagedVariant[] = rungMedia.map((media, i) => {
    const bandwidth = variantBandwidth(media.media, audioMedia?.media);
    return {
      id: plan.rungs[i]!.id,
      width: media.width,
      height: media.height,
      bandwidth: bandwidth.bandwidth,
      averageBandwidth: bandwidth.averageBandwidth,
      codecs: [rungProbes[i]!.codecs, ...(audioMedia ? [audioMedia.codecs] : [])].join(','),
    };
  });
  // Audio only: the master's one variant is the audio playlist itself (writeMasterPlaylist).
  const variants =
    rungs.length === 0 && audio !== null && audioMedia !== undefined
      ? [audioOnlyVariant(audio, audioMedia)]
      : rungVariants;
  const variantPlaylists = rungs.length === 0 && audio !== null ? [audio] : rungs;
  const findings = validateHlsPackage({
    masterPath: MASTER,
    masterText,
    mediaPlaylists: Object.fromEntries(
      renditions.map((rendition) => [rendition.playlistPath, rendition.text]),
    ),
    sizeOf: (path) => sizes.get(path),
    expectedDurationSec: options.expectedDurationSec,
    expectedCodecs: Object.fromEntries(
      variantPlaylists.map((rendition, i) => [rendition.playlistPath, variants[i]!.codecs]),
    ),
  });
  return { masterPath, mpdPath, findings, variants };
}

function audioOnlyVariant(audio: ReadRendition, media: AudioRenditionMedia): PackagedVariant {
  const bandwidth = variantBandwidth(media.media);
  return {
    id: audio.output.name,
    width: 0,
    height: 0,
    bandwidth: bandwidth.bandwidth,
    averageBandwidth: bandwidth.averageBandwidth,
    codecs: media.codecs,
  };
}

/**
 * The lines of a media playlist the hls muxer writes: EXT-X-TARGETDURATION, one EXT-X-MAP, and
 * `#EXTINF:<seconds>,` before each segment URI. Throws naming the playlist for anything else.
 */
export function parseMediaPlaylist(
  text: string,
  name: string,
): { targetDurationSec: number; initUri: string; segments: { uri: string; durationSec: number }[] } {
  const lines = text.split(/\r?\n/).map((line) => line.trim());
  const target = Number(/^#EXT-X-TARGETDURATION:(\d+)$/m.exec(text)?.[1]);
  const maps = lines.filter((line) => line.startsWith('#EXT-X-MAP:'));
  const initUri = maps.length === 1 ? /URI="([^"]+)"/.exec(maps[0]!)?.[1] : undefined;
  if (!Number.isInteger(target) || target <= 0 || initUri === undefined) {
    throw new Error(
      `${name}: expected one EXT-X-TARGETDURATION and one EXT-X-MAP with a URI (an fMP4 media playlist)`,
    );
  }
  const segments: { uri: string; durationSec: number }[] = [];
  let pending: number | undefined;
  lines.forEach((line, i) => {
    const extinf = /^#EXTINF:([\d.]+)/.exec(line);
    if (extinf) {
      pending = Number(extinf[1]);
    } else if (line !== '' && !line.startsWith('#')) {
      if (pending === undefined || !(pending > 0)) {
        throw new Error(`${name} line ${i + 1}: segment ${line} has no EXTINF duration before it`);
      }
      segments.push({ uri: line, durationSec: pending });
      pending = undefined;
    }
  });
  return { targetDurationSec: target, initUri, segments };
}

/**
 * `text` with an EXT-X-TARGETDURATION of at least 1 and at least every EXTINF rounded to the
 * nearest integer (RFC 8216 4.3.3.1). ffmpeg 5.1's hls muxer rounds the longest segment to the
 * nearest integer, so a video of 0.5 s or less (a one-frame clip) got `TARGETDURATION:0`, which
 * players and parsers refuse.
 */
export function withTargetDuration(text: string): string {
  const durations = [...text.matchAll(/^#EXTINF:([\d.]+)/gm)].map((m) => Number(m[1]));
  const needed = Math.max(1, ...durations.map((d) => Math.round(d)));
  return text.replace(/^#EXT-X-TARGETDURATION:(\d+)$/m, (line, value: string) =>
    Number(value) >= needed ? line : `#EXT-X-TARGETDURATION:${needed}`,
  );
}

// RFC 8216 4.3.3.1: the tag says every segment starts with a key frame (video) or can be decoded on
// its own. True of all renditions here: video segments start at the forced keyframes, and every
// AAC frame is a sync sample. ffmpeg 5.1's hls muxer writes it for video variants only.
const INDEPENDENT = '#EXT-X-INDEPENDENT-SEGMENTS';

/** `text` with EXT-X-INDEPENDENT-SEGMENTS after EXT-X-VERSION (or EXTM3U) when it lacks it. */
export function withIndependentSegments(text: string): string {
  if (text.split(/\r?\n/).some((line) => line.trim() === INDEPENDENT)) return text;
  const lines = text.split('\n');
  const version = lines.findIndex((line) => line.startsWith('#EXT-X-VERSION:'));
  lines.splice(version === -1 ? 1 : version + 1, 0, INDEPENDENT);
  return lines.join('\n');
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function readRendition(outDir: string, output: RenditionOutput): Promise<ReadRendition> {
  const playlistPath = output.playlist;
  const original = await readFile(join(outDir, playlistPath), 'utf8');
  const text = withTargetDuration(withIndependentSegments(original));
  if (text !== original) await writeFile(join(outDir, playlistPath), text);
  const parsed = parseMediaPlaylist(text, playlistPath);
  // The same resolution as the validator's, so both look up the same package paths.
  const initPath = resolvePackageUri(playlistPath, parsed.initUri);
  const segments = parsed.segments.map((segment) => ({
    ...segment,
    path: resolvePackageUri(playlistPath, segment.uri),
  }));
  const sizes = new Map<string, number>();
  for (const path of [initPath, ...segments.map((segment) => segment.path)]) {
    const size = await sizeOf(join(outDir, path));
    if (size !== undefined) sizes.set(path, size);
  }
  if (!sizes.get(initPath)) {
    throw new Error(`${playlistPath}: init segment ${parsed.initUri} is missing or empty (${initPath})`);
  }
  return {
    output,
    playlistPath,
    text,
    targetDurationSec: parsed.targetDurationSec,
    init: { uri: parsed.initUri, path: initPath },
    segments,
    sizes,
  };
}

// A missing segment counts as 0 bytes here; the validator reports it, and the package is not published.
function measuredMedia(rendition: ReadRendition): MeasuredMedia {
  return {
    uri: rendition.playlistPath,
    targetDurationSec: rendition.targetDurationSec,
    segments: rendition.segments.map((segment) => ({
      durationSec: segment.durationSec,
      bytes: rendition.sizes.get(segment.path) ?? 0,
    })),
  };
}

function dashSegments(rendition: ReadRendition): DashSegment[] {
  return rendition.segments.map((segment) => ({
    uri: segment.path,
    durationSec: segment.durationSec,
    bytes: rendition.sizes.get(segment.path) ?? 0,
  }));
}

interface FfprobeStream {
  codec_name?: string;
  codec_type?: string;
  profile?: string;
  level?: number;
  width?: number;
  height?: number;
  sample_rate?: string;
  channels?: number;
  time_base?: string;
}

/**
 * Probes one rendition from its init segment followed by its first (existing, non-empty) segment:
 * ffprobe on the init segment alone reports profile `unknown` and level -99 (ffmpeg 5.1: it has
 * the sample description but no frame to read the SPS from). The concatenation is what a player
 * feeds its decoder, and the mov demuxer reads the track's timescale from it as `time_base`.
 */
export async function probeTrack(
  outDir: string,
  rendition: ReadRendition,
  kind: 'video' | 'audio',
  options: RunOptions,
): Promise<ProbedTrack> {
  const first = rendition.segments.find((segment) => (rendition.sizes.get(segment.path) ?? 0) > 0);
  if (first === undefined) {
    throw new Error(`${rendition.playlistPath}: no segment exists to read the codec from`);
  }
  const init = await readFile(join(outDir, rendition.init.path));
  const bytes = Buffer.concat([init, await readFile(join(outDir, first.path))]);
  const dir = await mkdtemp(join(tmpdir(), 'assetpipe-package-probe-'));
  try {
    const file = join(dir, 'probe.mp4');
    await writeFile(file, bytes);
    const { stdout } = await run(
      'ffprobe',
      [
        '-v',
        'error',
        '-print_format',
        'json',
        '-show_entries',
        'stream=codec_name,codec_type,profile,level,width,height,sample_rate,channels,time_base',
        // `file:` keeps the temporary path from being read as a protocol or an option.
        `file:${file}`,
      ],
      options,
    );
    const streams = (JSON.parse(stdout) as { streams?: FfprobeStream[] }).streams ?? [];
    const stream = streams.length === 1 ? streams[0] : undefined;
    if (stream?.codec_type !== kind) {
      throw new Error(
        `${rendition.playlistPath}: expected one ${kind} stream, ffprobe reads ${streams.map((s) => s.codec_type).join(', ') || 'none'}`,
      );
    }
    // "1/15360": the mov demuxer's time base is 1 / the track's mdhd timescale.
    const timeBase = /^1\/(\d+)$/.exec(stream.time_base ?? '');
    if (!timeBase) {
      throw new Error(
        `${rendition.playlistPath}: expected a time base 1/<timescale>, got ${stream.time_base}`,
      );
    }
    return {
      codecs: codecString({
        codecName: stream.codec_name ?? 'unknown',
        profile: stream.profile ?? 'unknown',
        ...(stream.level === undefined ? {} : { level: stream.level }),
        ...sampleEntryDetails(init),
      }),
      timescale: Number(timeBase[1]),
      width: stream.width ?? 0,
      height: stream.height ?? 0,
      sampleRate: Number(stream.sample_rate ?? 0),
      channels: stream.channels ?? 0,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The payloads of the boxes at `path` (`['moov', 'trak']`) in `bytes`, an MP4 file or box body. */
function boxes(bytes: Buffer, path: readonly string[]): Buffer[] {
  const [type, ...rest] = path;
  const found: Buffer[] = [];
  for (let at = 0; at + 8 <= bytes.length; ) {
    let size = bytes.readUInt32BE(at);
    let header = 8;
    if (size === 1 && at + 16 <= bytes.length) {
      size = Number(bytes.readBigUInt64BE(at + 8));
      header = 16;
    } else if (size === 0) {
      size = bytes.length - at;
    }
    if (size < header || at + size > bytes.length) break;
    if (bytes.toString('latin1', at + 4, at + 8) === type) {
      const body = bytes.subarray(at + header, at + size);
      found.push(...(rest.length === 0 ? [body] : boxes(body, rest)));
    }
    at += size;
  }
  return found;
}

// A visual sample entry's own fields (ISO/IEC 14496-12 12.1.3) take 78 bytes after the box header;
// the decoder configuration box (avcC, hvcC, av1C) follows them.
const VISUAL_SAMPLE_ENTRY_FIELDS = 78;

/**
 * What ffprobe does not print but the codec string needs, read from the init segment's sample
 * entry and decoder configuration record: the sample entry (`hvc1` or `hev1`: players treat them
 * differently), H.264 constraint flags (avcC), HEVC tier and constraint bytes (hvcC), AV1 tier and
 * bit depth (av1C). Empty for audio and for anything unreadable (codecString's defaults apply).
 */
export function sampleEntryDetails(init: Buffer): Partial<ProbedCodec> {
  const [stsd] = boxes(init, ['moov', 'trak', 'mdia', 'minf', 'stbl', 'stsd']);
  // stsd: version and flags, entry count, then the sample entries.
  if (stsd === undefined || stsd.length < 16) return {};
  const entrySize = stsd.readUInt32BE(8);
  const entryType = stsd.toString('latin1', 12, 16);
  const children = stsd.subarray(16 + VISUAL_SAMPLE_ENTRY_FIELDS, 8 + entrySize);
  if (entryType === 'avc1' || entryType === 'avc3') {
    const [avcC] = boxes(children, ['avcC']);
    // configurationVersion, AVCProfileIndication, profile_compatibility (the constraint flags), level.
    return avcC && avcC.length >= 4 ? { constraintFlags: avcC[2]! } : {};
  }
  if (entryType === 'hvc1' || entryType === 'hev1') {
    const [hvcC] = boxes(children, ['hvcC']);
    if (!hvcC || hvcC.length < 13) return { sampleEntry: entryType };
    // configurationVersion; profile_space(2) tier(1) profile_idc(5); 4 compatibility bytes; 6
    // constraint indicator bytes; level.
    return {
      sampleEntry: entryType,
      tier: (hvcC[1]! & 0x20) !== 0 ? 'H' : 'L',
      constraintBytes: [...hvcC.subarray(6, 12)],
    };
  }
  if (entryType === 'av01') {
    const [av1C] = boxes(children, ['av1C']);
    if (!av1C || av1C.length < 3) return {};
    // marker and version; seq_profile(3) seq_level_idx_0(5); seq_tier_0, high_bitdepth, twelve_bit...
    const flags = av1C[2]!;
    const highBitDepth = (flags & 0x40) !== 0;
    return {
      av1Tier: (flags & 0x80) !== 0 ? 'H' : 'M',
      bitDepth: highBitDepth ? ((flags & 0x20) !== 0 ? 12 : 10) : 8,
    };
  }
  return {};
}
