import { getOptions, parse, setOptions, type types } from 'hls-parser';
import { averageBitrate, type MeasuredSegment, peakSegmentBitrate, roundUpBitrate } from './hls-master.js';

// The synthetic HLS canary: before a package is published, its master and every media playlist
// are parsed with a real HLS parser (hls-parser) and checked against what was written to storage.
// Parsers, like players, accept a lot that does not play everywhere, so the checks below are
// assetpipe's own; the parser only gives us the structure (and refuses what it cannot read).
//
// Pure: playlist texts and a size lookup in, findings out. An empty list means the package is valid.

export type FindingCode =
  | 'PLAYLIST_UNPARSABLE'
  | 'PLAYLIST_MISSING'
  | 'NOT_A_MASTER_PLAYLIST'
  | 'NOT_A_MEDIA_PLAYLIST'
  | 'NO_VARIANTS'
  | 'NO_INDEPENDENT_SEGMENTS'
  | 'NOT_VOD'
  | 'NO_ENDLIST'
  | 'NO_SEGMENTS'
  | 'SEGMENT_MISSING'
  | 'SEGMENT_EMPTY'
  | 'INIT_SEGMENT_MISSING'
  | 'INIT_SEGMENT_EMPTY'
  | 'SEGMENT_TOO_LONG'
  | 'DURATION_MISMATCH'
  | 'BANDWIDTH_BELOW_PEAK'
  | 'BANDWIDTH_ABOVE_PEAK'
  | 'AVERAGE_BANDWIDTH_MISSING'
  | 'AVERAGE_BANDWIDTH_OFF'
  | 'CODECS_MISMATCH'
  | 'VARIANT_UNEXPECTED';

export interface Finding {
  code: FindingCode;
  /** One sentence naming the playlist (package path), the line and the URI concerned. */
  message: string;
}

export interface HlsPackageInput {
  /** Package path of the master playlist (`master.m3u8`); every URI resolves against its referrer. */
  masterPath: string;
  masterText: string;
  /** Media playlist texts by package path (`720p/index.m3u8`); an absent path is a missing file. */
  mediaPlaylists: Readonly<Record<string, string>>;
  /** Size in bytes of the file at a package path, or undefined when there is none. */
  sizeOf: (path: string) => number | undefined;
  /** The source's duration; every media playlist must add up to it within 0.5 s. Unchecked when omitted. */
  expectedDurationSec?: number;
  /**
   * The CODECS each variant must declare (from ffprobe on the written rungs), keyed by the variant
   * URI as the master writes it; compared as sets of codec entries. Unchecked when omitted.
   */
  expectedCodecs?: Readonly<Record<string, string>>;
}

/** Allowed gap between a media playlist's total duration and the source's (issue 5, section 7). */
export const DURATION_TOLERANCE_SEC = 0.5;
/** BANDWIDTH and AVERAGE-BANDWIDTH must be within 10 % of the measured rates (Apple's authoring spec). */
export const BANDWIDTH_TOLERANCE = 0.1;

const PACKAGE_ORIGIN = 'https://package.invalid';

/**
 * Resolves a URI found in the playlist at `referrerPath` (RFC 3986, as players do) to a package
 * path; a URI that leaves the package (another host) is returned as the absolute URL it names.
 */
export function resolvePackageUri(referrerPath: string, uri: string): string {
  const url = new URL(uri, `${PACKAGE_ORIGIN}/${referrerPath}`);
  return url.origin === PACKAGE_ORIGIN ? decodeURIComponent(url.pathname.slice(1)) : url.href;
}

type ParseResult = { playlist: types.MasterPlaylist | types.MediaPlaylist } | { error: string };

// hls-parser keeps its options in module state. Strict mode makes it throw instead of logging, so
// it is switched on for the (synchronous) parse and the caller's options are put back afterwards.
function parseWith(text: string, strictMode: boolean): types.MasterPlaylist | types.MediaPlaylist {
  const saved = getOptions();
  setOptions({ strictMode, silent: true });
  try {
    return parse(text);
  } finally {
    setOptions({ strictMode: saved.strictMode ?? false, silent: saved.silent ?? false });
  }
}

// The one strict-mode refusal that is also a check of ours: ours names the segment and line, so for
// it the playlist is parsed leniently and our check reports it. (If a library upgrade rewords the
// message, the package still fails, with the library's sentence instead of ours.)
const COVERED_BY_OUR_CHECKS = ['EXTINF duration, when rounded to the nearest integer'];

function parsePlaylist(text: string): ParseResult {
  try {
    return { playlist: parseWith(text, true) };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (COVERED_BY_OUR_CHECKS.some((covered) => message.includes(covered))) {
      return { playlist: parseWith(text, false) };
    }
    return { error: message };
  }
}

/** Line numbers (1-based) of a playlist's URI lines and tag lookups, for findings a person can follow. */
class PlaylistLines {
  private readonly lines: string[];
  private readonly uriLines: number[];

  constructor(text: string) {
    this.lines = text.split(/\r?\n/);
    this.uriLines = [];
    this.lines.forEach((line, i) => {
      const trimmed = line.trim();
      if (trimmed !== '' && !trimmed.startsWith('#')) this.uriLines.push(i + 1);
    });
  }

  /** Line of the n-th URI line (segment n in a media playlist, variant n in a master). */
  uriLine(n: number): number | undefined {
    return this.uriLines[n];
  }

  /** Line of the closest tag `name` at or before `line`. */
  tagBefore(name: string, line: number): number | undefined {
    for (let i = line - 1; i >= 0; i--) if (this.lines[i]!.startsWith(`#${name}:`)) return i + 1;
    return undefined;
  }

  /** First line of tag `name` whose URI attribute is `uri`. */
  tagWithUri(name: string, uri: string): number | undefined {
    const index = this.lines.findIndex(
      (line) => line.startsWith(`#${name}:`) && line.includes(`URI="${uri}"`),
    );
    return index === -1 ? undefined : index + 1;
  }
}

const at = (path: string, line: number | undefined) => (line === undefined ? path : `${path} line ${line}`);
// Measured rates are shown as the writer would write them (rounded up).
const bps = (value: number) => `${roundUpBitrate(value)} bit/s`;
const seconds = (value: number) => `${value.toFixed(3)} s`;

interface MediaReference {
  path: string;
  uri: string;
  /** Where the master references it. */
  line: number | undefined;
}

interface CheckedMedia {
  playlist: types.MediaPlaylist;
  /** Measured segments, or undefined when a size is unknown (already reported). */
  measured: MeasuredSegment[] | undefined;
}

function segmentBytes(segment: types.Segment, size: number): number {
  // A byte-range segment is a slice of a larger file; its own size is the range's length.
  return segment.byterange ? segment.byterange.length : size;
}

function checkMedia(
  reference: MediaReference,
  input: HlsPackageInput,
  findings: Finding[],
): CheckedMedia | undefined {
  const { path } = reference;
  const text = input.mediaPlaylists[path];
  if (text === undefined) {
    findings.push({
      code: 'PLAYLIST_MISSING',
      message: `${at(input.masterPath, reference.line)}: media playlist ${reference.uri} does not exist (looked for ${path}).`,
    });
    return undefined;
  }
  const parsed = parsePlaylist(text);
  if ('error' in parsed) {
    findings.push({ code: 'PLAYLIST_UNPARSABLE', message: `${path}: cannot be parsed: ${parsed.error}.` });
    return undefined;
  }
  const playlist = parsed.playlist;
  if (playlist.isMasterPlaylist) {
    findings.push({
      code: 'NOT_A_MEDIA_PLAYLIST',
      message: `${path}: is a master playlist, but ${at(input.masterPath, reference.line)} references it as a media playlist.`,
    });
    return undefined;
  }
  const lines = new PlaylistLines(text);

  // A VOD package must say so and be complete, or players treat it as live and keep reloading.
  if (playlist.playlistType !== 'VOD') {
    findings.push({
      code: 'NOT_VOD',
      message: `${path}: has no EXT-X-PLAYLIST-TYPE:VOD (found ${playlist.playlistType ?? 'none'}).`,
    });
  }
  if (!playlist.endlist) {
    findings.push({ code: 'NO_ENDLIST', message: `${path}: has no EXT-X-ENDLIST.` });
  }
  if (playlist.segments.length === 0) {
    findings.push({ code: 'NO_SEGMENTS', message: `${path}: lists no segments.` });
    return { playlist, measured: undefined };
  }

  const checkedInits = new Set<string>();
  const measured: MeasuredSegment[] = [];
  let sizesKnown = true;
  let total = 0;
  playlist.segments.forEach((segment, i) => {
    const line = lines.uriLine(i);
    total += segment.duration;

    if (segment.map && !checkedInits.has(segment.map.uri)) {
      checkedInits.add(segment.map.uri);
      const initPath = resolvePackageUri(path, segment.map.uri);
      const initSize = input.sizeOf(initPath);
      const initLine = lines.tagWithUri('EXT-X-MAP', segment.map.uri);
      if (initSize === undefined) {
        findings.push({
          code: 'INIT_SEGMENT_MISSING',
          message: `${at(path, initLine)}: init segment ${segment.map.uri} does not exist (looked for ${initPath}).`,
        });
      } else if (initSize === 0) {
        findings.push({
          code: 'INIT_SEGMENT_EMPTY',
          message: `${at(path, initLine)}: init segment ${segment.map.uri} is empty (${initPath}).`,
        });
      }
    }

    const segmentPath = resolvePackageUri(path, segment.uri);
    const size = input.sizeOf(segmentPath);
    if (size === undefined) {
      sizesKnown = false;
      findings.push({
        code: 'SEGMENT_MISSING',
        message: `${at(path, line)}: segment ${segment.uri} does not exist (looked for ${segmentPath}).`,
      });
    } else if (size === 0) {
      sizesKnown = false;
      findings.push({
        code: 'SEGMENT_EMPTY',
        message: `${at(path, line)}: segment ${segment.uri} is empty (${segmentPath}).`,
      });
    } else {
      measured.push({ durationSec: segment.duration, bytes: segmentBytes(segment, size) });
    }

    // RFC 8216 4.3.3.1: each EXTINF, rounded to the nearest integer, must not exceed the target.
    if (Math.round(segment.duration) > playlist.targetDuration) {
      findings.push({
        code: 'SEGMENT_TOO_LONG',
        message:
          `${at(path, line)}: segment ${segment.uri} lasts ${seconds(segment.duration)}, ` +
          `longer than EXT-X-TARGETDURATION:${playlist.targetDuration} (rounded to the nearest second).`,
      });
    }
  });

  const expected = input.expectedDurationSec;
  if (expected !== undefined && Math.abs(total - expected) > DURATION_TOLERANCE_SEC) {
    findings.push({
      code: 'DURATION_MISMATCH',
      message: `${path}: segments add up to ${seconds(total)}, the source lasts ${seconds(expected)} (allowed: ± ${DURATION_TOLERANCE_SEC} s).`,
    });
  }
  return { playlist, measured: sizesKnown ? measured : undefined };
}

function codecSet(codecs: string): string[] {
  return codecs
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '')
    .sort();
}

function checkBandwidth(
  variant: types.Variant,
  where: string,
  own: CheckedMedia,
  audio: readonly CheckedMedia[],
  findings: Finding[],
): void {
  if (!own.measured || audio.some((media) => !media.measured)) return;
  // RFC 8216 4.3.4.2: the peak of the variant is its own plus the largest of its audio group's.
  const rates = (media: CheckedMedia) => ({
    peak: peakSegmentBitrate(media.measured!, media.playlist.targetDuration),
    average: averageBitrate(media.measured!),
  });
  const ownRates = rates(own);
  const audioRates = audio.map(rates);
  const peak = ownRates.peak + Math.max(0, ...audioRates.map((rate) => rate.peak));
  const average = ownRates.average + Math.max(0, ...audioRates.map((rate) => rate.average));

  if (variant.bandwidth < roundUpBitrate(peak)) {
    findings.push({
      code: 'BANDWIDTH_BELOW_PEAK',
      message: `${where}: BANDWIDTH=${variant.bandwidth} of ${variant.uri} is below its measured peak of ${bps(peak)}.`,
    });
  } else if (variant.bandwidth > roundUpBitrate(peak * (1 + BANDWIDTH_TOLERANCE))) {
    findings.push({
      code: 'BANDWIDTH_ABOVE_PEAK',
      message: `${where}: BANDWIDTH=${variant.bandwidth} of ${variant.uri} is more than 10 % above its measured peak of ${bps(peak)}.`,
    });
  }
  if (variant.averageBandwidth === undefined) {
    findings.push({
      code: 'AVERAGE_BANDWIDTH_MISSING',
      message: `${where}: ${variant.uri} has no AVERAGE-BANDWIDTH (measured average ${bps(average)}).`,
    });
  } else if (
    variant.averageBandwidth > roundUpBitrate(average * (1 + BANDWIDTH_TOLERANCE)) ||
    variant.averageBandwidth < Math.floor(average * (1 - BANDWIDTH_TOLERANCE))
  ) {
    findings.push({
      code: 'AVERAGE_BANDWIDTH_OFF',
      message: `${where}: AVERAGE-BANDWIDTH=${variant.averageBandwidth} of ${variant.uri} is more than 10 % off its measured average of ${bps(average)}.`,
    });
  }
}

function checkCodecs(
  variant: types.Variant,
  where: string,
  input: HlsPackageInput,
  findings: Finding[],
): void {
  if (!input.expectedCodecs) return;
  const expected = input.expectedCodecs[variant.uri];
  if (expected === undefined) {
    findings.push({
      code: 'VARIANT_UNEXPECTED',
      message: `${where}: variant ${variant.uri} is not one of the rungs that were encoded.`,
    });
    return;
  }
  const declared = variant.codecs === undefined ? [] : codecSet(variant.codecs);
  const wanted = codecSet(expected);
  if (declared.join(',') !== wanted.join(',')) {
    findings.push({
      code: 'CODECS_MISMATCH',
      message: `${where}: variant ${variant.uri} declares CODECS="${variant.codecs ?? ''}", ffprobe reads "${wanted.join(',')}".`,
    });
  }
}

/**
 * Checks an HLS package before it is published. Findings name the playlist, line and URI of each
 * defect: unparsable playlists, a master without EXT-X-INDEPENDENT-SEGMENTS, media playlists that
 * are not complete VOD, missing or empty segments and init segments, segments longer than the
 * target duration, totals off the source duration, BANDWIDTH / AVERAGE-BANDWIDTH off the measured
 * rates, CODECS off what ffprobe read. An empty list means the package is valid.
 */
export function validateHlsPackage(input: HlsPackageInput): Finding[] {
  const findings: Finding[] = [];
  const { masterPath } = input;
  const parsed = parsePlaylist(input.masterText);
  if ('error' in parsed) {
    findings.push({
      code: 'PLAYLIST_UNPARSABLE',
      message: `${masterPath}: cannot be parsed: ${parsed.error}.`,
    });
    return findings;
  }
  const master = parsed.playlist;
  if (!master.isMasterPlaylist) {
    findings.push({
      code: 'NOT_A_MASTER_PLAYLIST',
      message: `${masterPath}: is a media playlist, not a master.`,
    });
    return findings;
  }
  const lines = new PlaylistLines(input.masterText);
  if (!master.independentSegments) {
    findings.push({
      code: 'NO_INDEPENDENT_SEGMENTS',
      message: `${masterPath}: has no EXT-X-INDEPENDENT-SEGMENTS.`,
    });
  }
  const variants = master.variants.filter((variant) => !variant.isIFrameOnly);
  if (variants.length === 0) {
    findings.push({ code: 'NO_VARIANTS', message: `${masterPath}: lists no variant streams.` });
    return findings;
  }

  // Each media playlist is checked once, however many variants share it (an audio group).
  const checked = new Map<string, CheckedMedia | undefined>();
  const check = (uri: string, line: number | undefined) => {
    const path = resolvePackageUri(masterPath, uri);
    if (!checked.has(path)) checked.set(path, checkMedia({ path, uri, line }, input, findings));
    return checked.get(path);
  };

  variants.forEach((variant, i) => {
    const uriLine = lines.uriLine(i);
    const where = at(
      masterPath,
      uriLine === undefined ? undefined : lines.tagBefore('EXT-X-STREAM-INF', uriLine),
    );
    const own = check(variant.uri, uriLine);
    const audio: CheckedMedia[] = [];
    let audioComplete = true;
    for (const rendition of variant.audio) {
      if (rendition.uri === undefined) continue; // muxed into the variant's own segments
      // ffmpeg lists an audio-only variant with its own group: the same playlist, played once.
      if (resolvePackageUri(masterPath, rendition.uri) === resolvePackageUri(masterPath, variant.uri))
        continue;
      const media = check(rendition.uri, lines.tagWithUri('EXT-X-MEDIA', rendition.uri));
      if (media) audio.push(media);
      else audioComplete = false;
    }
    if (own && audioComplete) checkBandwidth(variant, where, own, audio, findings);
    checkCodecs(variant, where, input, findings);
  });
  return findings;
}
