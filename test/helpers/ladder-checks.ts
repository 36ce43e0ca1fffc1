import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join, posix, relative, resolve, sep } from 'node:path';
import sharp from 'sharp';
import { run } from '../../src/media/ffmpeg.js';

// The acceptance checks of issue 5 on a packaged ladder, measured with the real tools and nothing
// of the code under test: ffprobe/ffmpeg for codecs, sizes, frame rates, keyframes, durations and
// decode errors; the files' own sizes for BANDWIDTH; sharp for sprite and poster pixels. Every
// check returns findings (a sentence naming the file) and the measurements behind them, so a test
// asserts `findings` is empty and its failure message says what is wrong where.

const RUN = { timeoutMs: 120_000 };

/** Which acceptance check a finding comes from. */
export type CheckName =
  | 'manifest'
  | 'codec'
  | 'size'
  | 'frame-rate'
  | 'keyframes'
  | 'duration'
  | 'decode'
  | 'bandwidth'
  | 'average-bandwidth'
  | 'storyboard'
  | 'poster';

export interface Finding {
  check: CheckName;
  /** The file the finding is about, relative to the package (or the file's own path). */
  file: string;
  message: string;
}

/** The span a stream's packets cover, and where its keyframes are. */
export interface StreamExtent {
  startSec: number;
  /** Latest `pts + duration` of any packet. */
  endSec: number;
  packets: number;
  /** Presentation times of the keyframe packets, ascending. */
  keyframeTimesSec: number[];
  /** Packet durations, seconds, in presentation order (a constant frame rate has one value). */
  packetDurationsSec: number[];
}

interface FfprobePacket {
  pts_time?: string;
  duration_time?: string;
  flags?: string;
}

interface FfprobeStream {
  codec_type?: string;
  codec_name?: string;
  profile?: string;
  width?: number;
  height?: number;
  pix_fmt?: string;
  color_transfer?: string;
  avg_frame_rate?: string;
  sample_rate?: string;
  channels?: number;
}

function finite(text: string | undefined): number | null {
  if (text === undefined || text === '' || text === 'N/A') return null;
  const value = Number(text);
  return Number.isFinite(value) ? value : null;
}

function ratio(text: string | undefined): number | null {
  const [num, den] = (text ?? '').split('/').map(Number);
  return num !== undefined && den !== undefined && den > 0 && num > 0 ? num / den : null;
}

async function ffprobeJson<T>(args: string[]): Promise<T> {
  const { stdout } = await run('ffprobe', ['-v', 'error', '-of', 'json', ...args], RUN);
  return JSON.parse(stdout) as T;
}

/**
 * What ffprobe says about the first `kind` stream of a file or a media playlist (read through
 * ffmpeg's HLS demuxer, as a player would), and the timing of its packets; one ffprobe run. A packet
 * without a duration (some WebM blocks) gets the smallest step between presentation times, so the
 * last frame still counts. `extent` is null when the stream has no packet.
 */
export async function probeStream(
  path: string,
  kind: 'video' | 'audio',
): Promise<{ stream: FfprobeStream | null; extent: StreamExtent | null }> {
  const out = await ffprobeJson<{ streams?: FfprobeStream[]; packets?: FfprobePacket[] }>([
    '-select_streams',
    kind === 'video' ? 'v:0' : 'a:0',
    '-show_entries',
    'stream=codec_type,codec_name,profile,width,height,pix_fmt,color_transfer,avg_frame_rate,sample_rate,channels:packet=pts_time,duration_time,flags',
    `file:${path}`,
  ]);
  const stream = out.streams?.[0] ?? null;
  const packets = (out.packets ?? [])
    .map((p) => ({ pts: finite(p.pts_time), duration: finite(p.duration_time), key: p.flags?.[0] === 'K' }))
    .filter((p): p is { pts: number; duration: number | null; key: boolean } => p.pts !== null)
    .sort((a, b) => a.pts - b.pts);
  if (packets.length === 0) return { stream, extent: null };
  const steps = packets.slice(1).map((p, i) => p.pts - packets[i]!.pts);
  const fallback = Math.min(...steps.filter((s) => s > 1e-6), Number.POSITIVE_INFINITY);
  const durations = packets.map((p) => p.duration ?? (Number.isFinite(fallback) ? fallback : 0));
  return {
    stream,
    extent: {
      startSec: packets[0]!.pts,
      endSec: Math.max(...packets.map((p, i) => p.pts + durations[i]!)),
      packets: packets.length,
      keyframeTimesSec: packets.filter((p) => p.key).map((p) => p.pts),
      packetDurationsSec: durations,
    },
  };
}

/** `ffmpeg -v error -i <path> -map 0 -f null -`: what it prints (nothing for a clean file). */
export async function nullDecode(path: string): Promise<string> {
  try {
    const { stderr } = await run(
      'ffmpeg',
      ['-hide_banner', '-nostdin', '-v', 'error', '-i', `file:${path}`, '-map', '0', '-f', 'null', '-'],
      RUN,
    );
    return stderr.trim();
  } catch (err) {
    return `ffmpeg failed: ${(err as Error).message}`;
  }
}

// --- the source ----------------------------------------------------------------------------------

/** The source file's streams as the duration and frame-rate checks compare against them. */
export interface SourceFacts {
  video: { frameRateFps: number; extent: StreamExtent } | null;
  audio: { sampleRate: number; extent: StreamExtent } | null;
}

export async function sourceFacts(path: string): Promise<SourceFacts> {
  const video = await probeStream(path, 'video');
  const audio = await probeStream(path, 'audio');
  // What a player presents starts at 0: packets before it (AAC priming, Opus pre-skip) are
  // trimmed by the container's edit list or pre-skip and are not part of the source's duration.
  const presented = (extent: StreamExtent | null): StreamExtent | null =>
    extent === null ? null : { ...extent, startSec: Math.max(0, extent.startSec) };
  const videoExtent = presented(video.extent);
  const audioExtent = presented(audio.extent);
  const fps = ratio(video.stream?.avg_frame_rate);
  return {
    video:
      videoExtent === null
        ? null
        : {
            // A one-frame file has no average rate in some containers; a frame is then its length.
            frameRateFps: fps ?? 1 / Math.max(1e-3, videoExtent.endSec - videoExtent.startSec),
            extent: videoExtent,
          },
    audio:
      audioExtent === null
        ? null
        : { sampleRate: Number(audio.stream?.sample_rate ?? 48_000), extent: audioExtent },
  };
}

// --- playlists -----------------------------------------------------------------------------------

export interface MasterPlaylist {
  variants: { uri: string; attributes: Record<string, string> }[];
  media: { uri: string | null; attributes: Record<string, string> }[];
}

function attributeList(text: string): Record<string, string> {
  return Object.fromEntries(
    [...text.matchAll(/([A-Z0-9-]+)=("[^"]*"|[^,]*)/g)].map((m) => [m[1]!, m[2]!.replace(/^"|"$/g, '')]),
  );
}

export function parseMaster(text: string): MasterPlaylist {
  const lines = text.split(/\r?\n/).map((line) => line.trim());
  const variants: MasterPlaylist['variants'] = [];
  const media: MasterPlaylist['media'] = [];
  lines.forEach((line, i) => {
    if (line.startsWith('#EXT-X-STREAM-INF:')) {
      const uri = lines.slice(i + 1).find((next) => next !== '' && !next.startsWith('#'));
      if (uri !== undefined) variants.push({ uri, attributes: attributeList(line.slice(18)) });
    } else if (line.startsWith('#EXT-X-MEDIA:')) {
      const attributes = attributeList(line.slice(13));
      media.push({ uri: attributes.URI ?? null, attributes });
    }
  });
  return { variants, media };
}

export interface MediaPlaylist {
  targetDurationSec: number;
  initUri: string | null;
  segments: { uri: string; durationSec: number }[];
}

export function parseMediaPlaylist(text: string): MediaPlaylist {
  const lines = text.split(/\r?\n/).map((line) => line.trim());
  const segments: MediaPlaylist['segments'] = [];
  let pending: number | null = null;
  for (const line of lines) {
    const extinf = /^#EXTINF:([\d.]+)/.exec(line);
    if (extinf) pending = Number(extinf[1]);
    else if (line !== '' && !line.startsWith('#')) {
      segments.push({ uri: line, durationSec: pending ?? Number.NaN });
      pending = null;
    }
  }
  const map = lines.find((line) => line.startsWith('#EXT-X-MAP:'));
  return {
    targetDurationSec: Number(/^#EXT-X-TARGETDURATION:(\d+)/m.exec(text)?.[1] ?? Number.NaN),
    initUri: map === undefined ? null : (attributeList(map.slice(11)).URI ?? null),
    segments,
  };
}

/** Peak (RFC 8216 section 4.1) and average segment bit rates of one media playlist, from file sizes. */
export interface MeasuredRates {
  peakBps: number;
  averageBps: number;
  segments: number;
}

/**
 * RFC 8216 4.1: the peak segment bit rate is the largest bit rate of any contiguous run of segments
 * lasting 0.5 to 1.5 target durations. A playlist shorter than half its target duration has no such
 * run; its only run, the whole playlist, is then the peak.
 */
export async function measureRates(playlistPath: string, playlist: MediaPlaylist): Promise<MeasuredRates> {
  const bits = await Promise.all(
    playlist.segments.map(async (s) => {
      const size = await stat(join(dirname(playlistPath), localUri(s.uri))).then(
        (st) => st.size,
        () => 0,
      );
      return size * 8;
    }),
  );
  const seconds = playlist.segments.map((s) => s.durationSec);
  const low = 0.5 * playlist.targetDurationSec;
  const high = 1.5 * playlist.targetDurationSec;
  let peak = 0;
  let windows = 0;
  for (let i = 0; i < bits.length; i++) {
    let b = 0;
    let d = 0;
    for (let j = i; j < bits.length; j++) {
      b += bits[j]!;
      d += seconds[j]!;
      if (d > high) break;
      if (d >= low) {
        windows++;
        peak = Math.max(peak, b / d);
      }
    }
  }
  const totalBits = bits.reduce((a, b) => a + b, 0);
  const totalSec = seconds.reduce((a, b) => a + b, 0);
  const averageBps = totalBits / totalSec;
  return { peakBps: windows > 0 ? peak : averageBps, averageBps, segments: bits.length };
}

/** A playlist URI as a relative file path: query and fragment dropped, escapes decoded. */
function localUri(uri: string): string {
  const url = new URL(uri, 'http://package.invalid/a/b/');
  return decodeURIComponent(url.pathname.replace(/^\/a\/b\//, ''));
}

// --- the package ---------------------------------------------------------------------------------

/** A rung as the plan (or the asset record's `ladder.rungs`) describes it. */
export interface ExpectedRung {
  id: string;
  codec: string;
  width: number;
  height: number;
  frameRate: number;
}

export interface CheckPackageOptions {
  /** Local directory holding `master.m3u8` and the rendition directories. */
  dir: string;
  /** The source file the package was made from (its streams are measured here too). */
  source: string;
  /** The planned rungs; each is looked for at `<id>/index.m3u8`. Omitted: not compared. */
  rungs?: readonly ExpectedRung[];
  /** The planned audio rendition (`null`: none may exist). Omitted: not compared. */
  audio?: { codec: string; channels: number } | null;
}

export interface RenditionReport {
  /** Media playlist, relative to the package: `h264-720p/index.m3u8`. */
  playlist: string;
  kind: 'video' | 'audio';
  codec: string | null;
  width: number | null;
  height: number | null;
  pixelFormat: string | null;
  colorTransfer: string | null;
  channels: number | null;
  extent: StreamExtent | null;
  rates: MeasuredRates;
  /** What `ffmpeg -v error -i <playlist> -f null -` printed. */
  decodeErrors: string;
}

export interface VariantReport {
  uri: string;
  bandwidth: number;
  averageBandwidth: number;
  codecs: string | null;
  resolution: string | null;
  /** Measured peak of the variant's playlist plus its audio rendition's peak. */
  measuredPeakBps: number;
  measuredAverageBps: number;
}

export interface PackageReport {
  findings: Finding[];
  renditions: RenditionReport[];
  variants: VariantReport[];
  /** The audio rendition's playlist (relative), or null. */
  audioPlaylist: string | null;
  source: SourceFacts;
}

/** Samples in one AAC frame; also the priming the ladder encoder shows at the start on purpose (ladder-encode.ts). */
const AAC_FRAME_SAMPLES = 1024;
// Timestamps come from different timescales (1/15360, 1/48000, ...): equal within a millisecond.
const SAME_INSTANT_SEC = 0.001;
// BANDWIDTH may sit at most this far above the measured peak, AVERAGE-BANDWIDTH this far off the average.
const BANDWIDTH_TOLERANCE = 0.1;

/**
 * Runs every package check of the acceptance on a local package directory: per rendition ffprobe
 * codec, size, frame rate, keyframes (identical across rungs, one at every segment start),
 * duration against the source's stream, a silent null decode; per variant BANDWIDTH and
 * AVERAGE-BANDWIDTH against the segment sizes on disk.
 */
export async function checkPackage(options: CheckPackageOptions): Promise<PackageReport> {
  const findings: Finding[] = [];
  const add = (check: CheckName, file: string, message: string) => findings.push({ check, file, message });
  const source = await sourceFacts(options.source);
  const masterText = await readFile(join(options.dir, 'master.m3u8'), 'utf8');
  const master = parseMaster(masterText);
  const audioMedia = master.media.filter((m) => m.attributes.TYPE === 'AUDIO');
  if (audioMedia.length > 1)
    add('manifest', 'master.m3u8', `${audioMedia.length} audio renditions, expected at most one`);
  const audioPlaylist =
    audioMedia[0]?.uri === null || audioMedia[0] === undefined ? null : localUri(audioMedia[0].uri);
  if (master.variants.length === 0) add('manifest', 'master.m3u8', 'no EXT-X-STREAM-INF variant');

  const playlists = new Map<string, 'video' | 'audio'>();
  for (const variant of master.variants) {
    const codecs = variant.attributes.CODECS ?? '';
    // An audio-only package's one variant is the audio playlist itself.
    const audioOnly = !/avc1|hvc1|hev1|av01|vp09/.test(codecs);
    playlists.set(localUri(variant.uri), audioOnly ? 'audio' : 'video');
  }
  if (audioPlaylist !== null) playlists.set(audioPlaylist, 'audio');

  const renditions: RenditionReport[] = [];
  for (const [playlist, kind] of playlists) {
    renditions.push(await checkRendition(options.dir, playlist, kind, source, add));
  }

  compareWithPlan(options, master, renditions, audioPlaylist, add);
  compareKeyframes(
    renditions.filter((r) => r.kind === 'video'),
    add,
  );

  const variants: VariantReport[] = master.variants.map((variant) => {
    const own = renditions.find((r) => r.playlist === localUri(variant.uri));
    const audio = renditions.find((r) => r.playlist === audioPlaylist && r !== own);
    const linksAudio = audio !== undefined && variant.attributes.AUDIO !== undefined;
    const peak = (own?.rates.peakBps ?? 0) + (linksAudio ? audio.rates.peakBps : 0);
    const average = (own?.rates.averageBps ?? 0) + (linksAudio ? audio.rates.averageBps : 0);
    const report: VariantReport = {
      uri: variant.uri,
      bandwidth: Number(variant.attributes.BANDWIDTH),
      averageBandwidth: Number(variant.attributes['AVERAGE-BANDWIDTH']),
      codecs: variant.attributes.CODECS ?? null,
      resolution: variant.attributes.RESOLUTION ?? null,
      measuredPeakBps: peak,
      measuredAverageBps: average,
    };
    checkBandwidth(report, add);
    if (own?.kind === 'video' && report.resolution !== `${own.width}x${own.height}`) {
      add(
        'size',
        'master.m3u8',
        `${variant.uri}: RESOLUTION=${report.resolution}, the stream is ${own.width}x${own.height}`,
      );
    }
    return report;
  });
  return { findings, renditions, variants, audioPlaylist, source };
}

async function checkRendition(
  dir: string,
  playlist: string,
  kind: 'video' | 'audio',
  source: SourceFacts,
  add: (check: CheckName, file: string, message: string) => void,
): Promise<RenditionReport> {
  const path = join(dir, playlist);
  const parsed = parseMediaPlaylist(await readFile(path, 'utf8'));
  if (parsed.segments.length === 0) add('manifest', playlist, 'lists no segment');
  if (!(parsed.targetDurationSec >= 1)) {
    add(
      'manifest',
      playlist,
      `EXT-X-TARGETDURATION is ${parsed.targetDurationSec}, expected a whole number >= 1`,
    );
  }
  // One tool at a time: two shared cores.
  const { stream, extent } = await probeStream(path, kind);
  const decodeErrors = await nullDecode(path);
  const rates = await measureRates(path, parsed);
  if (stream === null || extent === null) add('codec', playlist, `ffprobe finds no ${kind} stream`);
  if (decodeErrors !== '') add('decode', playlist, `a null decode printed: ${decodeErrors.slice(0, 600)}`);

  if (extent !== null) checkDuration(playlist, kind, extent, stream, source, add);

  if (kind === 'video' && extent !== null) {
    // Every segment must start with a keyframe (EXT-X-INDEPENDENT-SEGMENTS says so).
    let start = extent.startSec;
    parsed.segments.forEach((segment, i) => {
      if (!extent.keyframeTimesSec.some((t) => Math.abs(t - start) <= SAME_INSTANT_SEC)) {
        add(
          'keyframes',
          playlist,
          `segment ${i} (${segment.uri}) starts at ${fmt(start)} s without a keyframe there`,
        );
      }
      start += segment.durationSec;
    });
  }

  return {
    playlist,
    kind,
    codec: stream?.codec_name ?? null,
    width: stream?.width ?? null,
    height: stream?.height ?? null,
    pixelFormat: stream?.pix_fmt ?? null,
    colorTransfer: stream?.color_transfer ?? null,
    channels: stream?.channels ?? null,
    extent,
    rates,
    decodeErrors,
  };
}

/**
 * Video: the rendition lasts as long as the source's video stream, within one source frame (what
 * "within one frame" means for every rung, the halved ones included), and starts at 0. Audio: the
 * encoder shows the AAC priming (1024 samples) at the start on purpose (ladder-encode.ts); with
 * that allowed for, within one AAC frame of the source's audio (the last frame is padded).
 */
function checkDuration(
  playlist: string,
  kind: 'video' | 'audio',
  extent: StreamExtent,
  stream: FfprobeStream | null,
  source: SourceFacts,
  add: (check: CheckName, file: string, message: string) => void,
): void {
  const got = extent.endSec - extent.startSec;
  if (kind === 'video') {
    if (source.video === null) {
      add('duration', playlist, 'the source has no video stream to compare with');
      return;
    }
    const frame = 1 / source.video.frameRateFps + SAME_INSTANT_SEC;
    const want = source.video.extent.endSec - source.video.extent.startSec;
    if (Math.abs(got - want) > frame) {
      add(
        'duration',
        playlist,
        `lasts ${fmt(got)} s, the source's video ${fmt(want)} s: more than one frame (${fmt(frame)} s) apart`,
      );
    }
    if (extent.startSec > frame) add('duration', playlist, `starts at ${fmt(extent.startSec)} s, not at 0`);
    return;
  }
  if (source.audio === null) {
    add('duration', playlist, 'the source has no audio stream to compare with');
    return;
  }
  const aacFrame = AAC_FRAME_SAMPLES / Number(stream?.sample_rate ?? 48_000);
  const want = source.audio.extent.endSec - source.audio.extent.startSec;
  if (Math.abs(got - aacFrame - want) > aacFrame + SAME_INSTANT_SEC) {
    add(
      'duration',
      playlist,
      `lasts ${fmt(got)} s (${fmt(got - aacFrame)} s without the priming), the source's audio ${fmt(want)} s: more than one AAC frame (${fmt(aacFrame)} s) apart`,
    );
  }
  if (extent.startSec > aacFrame + SAME_INSTANT_SEC) {
    add('duration', playlist, `starts at ${fmt(extent.startSec)} s, not at 0`);
  }
}

function compareWithPlan(
  options: CheckPackageOptions,
  master: MasterPlaylist,
  renditions: readonly RenditionReport[],
  audioPlaylist: string | null,
  add: (check: CheckName, file: string, message: string) => void,
): void {
  if (options.rungs !== undefined) {
    const planned = new Set(options.rungs.map((r) => `${r.id}/index.m3u8`));
    for (const r of renditions) {
      if (r.kind === 'video' && !planned.has(r.playlist)) {
        add('manifest', 'master.m3u8', `variant ${r.playlist} is not in the plan`);
      }
    }
    for (const rung of options.rungs) {
      const playlist = `${rung.id}/index.m3u8`;
      const r = renditions.find((x) => x.playlist === playlist);
      if (r === undefined) {
        add('manifest', 'master.m3u8', `planned rung ${rung.id} has no variant (${playlist})`);
        continue;
      }
      if (r.codec !== rung.codec || r.pixelFormat !== 'yuv420p') {
        add('codec', playlist, `is ${r.codec} ${r.pixelFormat}, planned ${rung.codec} yuv420p`);
      }
      if (r.width !== rung.width || r.height !== rung.height) {
        add('size', playlist, `is ${r.width}x${r.height}, planned ${rung.width}x${rung.height}`);
      }
      const frame = 1 / rung.frameRate;
      const odd =
        r.extent?.packetDurationsSec.filter((d) => Math.abs(d - frame) > SAME_INSTANT_SEC / 2) ?? [];
      if (odd.length > 0) {
        add(
          'frame-rate',
          playlist,
          `planned ${fmt(rung.frameRate)} fps (frames of ${fmt(frame)} s), ${odd.length} frames last otherwise (${[...new Set(odd.map(fmt))].slice(0, 5).join(', ')} s)`,
        );
      }
    }
  }
  if (options.audio !== undefined) {
    const audio = audioPlaylist === null ? undefined : renditions.find((r) => r.playlist === audioPlaylist);
    const audioOnly = renditions.find((r) => r.kind === 'audio' && r.playlist !== audioPlaylist);
    const actual = audio ?? audioOnly;
    if (options.audio === null) {
      if (actual !== undefined)
        add('manifest', actual.playlist, 'an audio rendition exists, the plan has none');
      for (const variant of master.variants) {
        if ((variant.attributes.CODECS ?? '').includes('mp4a')) {
          add(
            'codec',
            'master.m3u8',
            `${variant.uri}: CODECS lists audio (${variant.attributes.CODECS}), the plan has none`,
          );
        }
      }
    } else if (actual === undefined) {
      add('manifest', 'master.m3u8', 'no audio rendition, the plan has one');
    } else if (actual.codec !== options.audio.codec || actual.channels !== options.audio.channels) {
      add(
        'codec',
        actual.playlist,
        `is ${actual.codec} with ${actual.channels} channels, planned ${options.audio.codec} with ${options.audio.channels}`,
      );
    }
  }
}

function compareKeyframes(
  rungs: readonly RenditionReport[],
  add: (check: CheckName, file: string, message: string) => void,
): void {
  // The largest rung is the reference the others are compared with.
  const [first, ...rest] = [...rungs].sort(
    (a, b) => (b.width ?? 0) * (b.height ?? 0) - (a.width ?? 0) * (a.height ?? 0),
  );
  if (first?.extent === undefined || first.extent === null) return;
  const reference = first.extent.keyframeTimesSec;
  for (const rung of rest) {
    const times = rung.extent?.keyframeTimesSec ?? [];
    const same =
      times.length === reference.length &&
      times.every((t, i) => Math.abs(t - reference[i]!) <= SAME_INSTANT_SEC);
    if (!same) {
      add(
        'keyframes',
        rung.playlist,
        `keyframes at ${times.map(fmt).join(', ')} s; ${first.playlist} has them at ${reference.map(fmt).join(', ')} s`,
      );
    }
  }
}

function checkBandwidth(
  v: VariantReport,
  add: (check: CheckName, file: string, message: string) => void,
): void {
  const peak = v.measuredPeakBps;
  const average = v.measuredAverageBps;
  if (!(v.bandwidth >= Math.floor(peak))) {
    add(
      'bandwidth',
      'master.m3u8',
      `${v.uri}: BANDWIDTH=${v.bandwidth} is below the measured peak ${Math.ceil(peak)} bit/s`,
    );
  } else if (v.bandwidth > peak * (1 + BANDWIDTH_TOLERANCE)) {
    add(
      'bandwidth',
      'master.m3u8',
      `${v.uri}: BANDWIDTH=${v.bandwidth} is more than 10 % above the measured peak ${Math.ceil(peak)} bit/s`,
    );
  }
  if (!(Math.abs(v.averageBandwidth - average) <= average * BANDWIDTH_TOLERANCE)) {
    add(
      'average-bandwidth',
      'master.m3u8',
      `${v.uri}: AVERAGE-BANDWIDTH=${v.averageBandwidth} is not within 10 % of the measured average ${Math.ceil(average)} bit/s`,
    );
  }
}

function fmt(n: number): string {
  return String(Number(n.toFixed(4)));
}

// --- storyboard and poster -----------------------------------------------------------------------

export interface StoryboardCue {
  startSec: number;
  endSec: number;
  /** The sheet's URI as the VTT writes it (without the fragment). */
  sheet: string;
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface StoryboardReport {
  findings: Finding[];
  cues: StoryboardCue[];
  /** Pixel size of every sheet the cues name, by URI. */
  sheets: Map<string, { width: number; height: number }>;
}

function vttSeconds(text: string): number {
  const parts = text.split(':').map(Number);
  return parts.reduce((total, part) => total * 60 + part, 0);
}

/** The cues of a storyboard VTT (`start --> end` then `sheet#xywh=x,y,w,h`). */
export function parseStoryboardVtt(text: string): { cues: StoryboardCue[]; problems: string[] } {
  const problems: string[] = [];
  if (!text.startsWith('WEBVTT')) problems.push('does not start with WEBVTT');
  const cues: StoryboardCue[] = [];
  const blocks = text.split(/\r?\n\r?\n/);
  for (const block of blocks) {
    const lines = block.split(/\r?\n/).filter((line) => line.trim() !== '');
    const timing = lines.findIndex((line) => line.includes('-->'));
    if (timing === -1) continue;
    const times = /^\s*([\d:.]+)\s+-->\s+([\d:.]+)/.exec(lines[timing]!);
    const payload = lines[timing + 1] ?? '';
    const xywh = /^(.*)#xywh=(\d+),(\d+),(\d+),(\d+)\s*$/.exec(payload);
    if (!times || !xywh) {
      problems.push(
        `cue ${JSON.stringify(block.slice(0, 120))} is not "start --> end" + "sheet#xywh=x,y,w,h"`,
      );
      continue;
    }
    cues.push({
      startSec: vttSeconds(times[1]!),
      endSec: vttSeconds(times[2]!),
      sheet: xywh[1]!,
      x: Number(xywh[2]),
      y: Number(xywh[3]),
      w: Number(xywh[4]),
      h: Number(xywh[5]),
    });
  }
  return { cues, problems };
}

/**
 * The storyboard checks: cues start at 0, follow each other without gap or overlap and reach the
 * end of the video; every `#xywh` rectangle lies inside its sheet (size read with sharp).
 * `sheetPath` maps a sheet URI as written in the VTT to a local file; by default a relative URI is
 * resolved against the VTT's directory.
 */
export async function checkStoryboard(options: {
  vttPath: string;
  durationSec: number;
  sheetPath?: (uri: string) => string | undefined;
}): Promise<StoryboardReport> {
  const findings: Finding[] = [];
  const file = options.vttPath;
  const add = (message: string) => findings.push({ check: 'storyboard', file, message });
  const { cues, problems } = parseStoryboardVtt(await readFile(options.vttPath, 'utf8'));
  for (const problem of problems) add(problem);
  if (cues.length === 0) add('has no cue');
  const sheetPath = options.sheetPath ?? ((uri: string) => join(dirname(options.vttPath), localUri(uri)));

  let expectedStart = 0;
  cues.forEach((cue, i) => {
    if (Math.abs(cue.startSec - expectedStart) > SAME_INSTANT_SEC) {
      add(
        i === 0
          ? `the first cue starts at ${fmt(cue.startSec)} s, not at 0`
          : `cue ${i} starts at ${fmt(cue.startSec)} s, the one before ends at ${fmt(expectedStart)} s (a gap or an overlap)`,
      );
    }
    if (!(cue.endSec > cue.startSec))
      add(`cue ${i} ends (${fmt(cue.endSec)} s) before it starts (${fmt(cue.startSec)} s)`);
    expectedStart = cue.endSec;
  });
  const last = cues.at(-1);
  if (last !== undefined && last.endSec < options.durationSec - SAME_INSTANT_SEC) {
    add(`the cues end at ${fmt(last.endSec)} s, the video lasts ${fmt(options.durationSec)} s`);
  }

  const sheets = new Map<string, { width: number; height: number }>();
  for (const uri of new Set(cues.map((c) => c.sheet))) {
    const path = sheetPath(uri);
    const meta =
      path === undefined
        ? undefined
        : await sharp(path)
            .metadata()
            .catch(() => undefined);
    if (meta === undefined)
      add(`sheet ${uri} cannot be read as an image${path === undefined ? '' : ` (${path})`}`);
    else sheets.set(uri, { width: meta.width, height: meta.height });
  }
  cues.forEach((cue, i) => {
    const sheet = sheets.get(cue.sheet);
    if (sheet === undefined) return;
    const inside =
      cue.w > 0 &&
      cue.h > 0 &&
      cue.x >= 0 &&
      cue.y >= 0 &&
      cue.x + cue.w <= sheet.width &&
      cue.y + cue.h <= sheet.height;
    if (!inside) {
      add(
        `cue ${i}: #xywh=${cue.x},${cue.y},${cue.w},${cue.h} is not inside ${cue.sheet} (${sheet.width}x${sheet.height})`,
      );
    }
  });
  return { findings, cues, sheets };
}

/**
 * Mean luma (0-255) below which a poster counts as black. ffmpeg's blackdetect calls a pixel black
 * below a tenth of the range (25.5); a mean under 32 is a black or nearly black frame, while
 * testsrc2 and real footage sit far above it.
 */
export const BLACK_MEAN_LUMA = 32;

export interface PosterReport {
  findings: Finding[];
  width: number;
  height: number;
  format: string | undefined;
  meanLuma: number;
}

/** The poster is an image, and not a black frame (mean luma with sharp). */
export async function checkPoster(path: string): Promise<PosterReport> {
  const findings: Finding[] = [];
  try {
    const meta = await sharp(path).metadata();
    const stats = await sharp(path).greyscale().stats();
    const meanLuma = stats.channels[0]?.mean ?? 0;
    if (meanLuma < BLACK_MEAN_LUMA) {
      findings.push({
        check: 'poster',
        file: path,
        message: `mean luma ${fmt(meanLuma)} (of 255) is below ${BLACK_MEAN_LUMA}: a black frame`,
      });
    }
    return { findings, width: meta.width, height: meta.height, format: meta.format, meanLuma };
  } catch (err) {
    findings.push({
      check: 'poster',
      file: path,
      message: `cannot be read as an image: ${(err as Error).message}`,
    });
    return { findings, width: 0, height: 0, format: undefined, meanLuma: 0 };
  }
}

// --- downloading a published package -------------------------------------------------------------

export interface DownloadedPackage {
  /** Local root: `master.m3u8` and every file below it at its path relative to the master. */
  dir: string;
  /** Relative paths of every file fetched, in fetch order. */
  files: string[];
  /** Local path of the storyboard VTT, and of every sheet by its URI as the VTT writes it. */
  storyboard: { vtt: string; sheets: Map<string, string> } | null;
  /** Local path of each extra URL fetched (poster...), by URL as given. */
  extras: Map<string, string>;
}

/**
 * Fetches a published HLS package the way a player does, without an API key: the master, every
 * media playlist, init segment and segment, into `dir` with the layout relative to the master
 * (a file outside the master's directory is an error). Also the storyboard VTT and every sheet
 * it names, and `extraUrls` (poster, MPD...). Throws naming the URL on any status but 200.
 */
export async function downloadPackage(options: {
  baseUrl: string;
  masterUrl: string;
  dir: string;
  storyboardVttUrl?: string | null;
  extraUrls?: readonly (string | null | undefined)[];
}): Promise<DownloadedPackage> {
  const master = new URL(options.masterUrl, options.baseUrl);
  const root = new URL('.', master);
  const files: string[] = [];

  const fetchTo = async (url: URL): Promise<{ path: string; bytes: Buffer }> => {
    if (!url.href.startsWith(root.href)) {
      throw new Error(`${url.href} is outside the package prefix ${root.href}`);
    }
    const rel = decodeURIComponent(url.pathname.slice(root.pathname.length));
    const path = resolve(options.dir, rel);
    if (relative(options.dir, path).startsWith(`..${sep}`))
      throw new Error(`${url.href} escapes ${options.dir}`);
    const res = await fetch(url, { signal: AbortSignal.timeout(30_000) });
    const bytes = Buffer.from(await res.arrayBuffer());
    if (res.status !== 200) {
      throw new Error(
        `GET ${url.pathname} (no API key): ${res.status} ${bytes.toString('utf8').slice(0, 300)}`,
      );
    }
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, bytes);
    files.push(posix.normalize(rel));
    return { path, bytes };
  };

  const masterText = (await fetchTo(master)).bytes.toString('utf8');
  const parsed = parseMaster(masterText);
  const mediaUrls = [
    ...parsed.variants.map((v) => v.uri),
    ...parsed.media.flatMap((m) => (m.uri === null ? [] : [m.uri])),
  ].map((uri) => new URL(uri, master));
  for (const url of new Map(mediaUrls.map((u) => [u.href, u])).values()) {
    const playlist = parseMediaPlaylist((await fetchTo(url)).bytes.toString('utf8'));
    const parts = [
      ...(playlist.initUri === null ? [] : [playlist.initUri]),
      ...playlist.segments.map((s) => s.uri),
    ];
    for (const uri of parts) await fetchTo(new URL(uri, url));
  }

  let storyboard: DownloadedPackage['storyboard'] = null;
  if (options.storyboardVttUrl) {
    const vttUrl = new URL(options.storyboardVttUrl, options.baseUrl);
    const vtt = await fetchTo(vttUrl);
    const sheets = new Map<string, string>();
    for (const cue of parseStoryboardVtt(vtt.bytes.toString('utf8')).cues) {
      if (!sheets.has(cue.sheet)) sheets.set(cue.sheet, (await fetchTo(new URL(cue.sheet, vttUrl))).path);
    }
    storyboard = { vtt: vtt.path, sheets };
  }
  const extras = new Map<string, string>();
  for (const extra of options.extraUrls ?? []) {
    if (extra) extras.set(extra, (await fetchTo(new URL(extra, options.baseUrl))).path);
  }
  return { dir: options.dir, files, storyboard, extras };
}
