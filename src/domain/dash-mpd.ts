import { type MeasuredSegment, variantBandwidth } from './hls-master.js';

// The DASH manifest of a VOD package, written by assetpipe over the SAME CMAF (fMP4) segments the
// HLS media playlists list: one init segment and numbered segments per rendition, so one copy of
// the media serves both protocols.
//
// Profile `urn:mpeg:dash:profile:isoff-live:2011`: every Representation has a SegmentTemplate with
// `$Number$` addressing and a SegmentTimeline giving each segment's exact duration in the track's
// own timescale (the `isoff-on-demand` profile would need one file per track with a `sidx` index,
// which is not what the hls muxer writes). `type="static"`: the whole presentation is there.
//
// ffmpeg's own dash muxer is not used (see ladder-encode.ts): it refuses 854x480 and 640x360 in one
// AdaptationSet ("Conflicting stream aspect ratios"), so a player could not switch between rungs.
//
// Pure: measured segments (EXTINF durations and byte sizes, as the HLS master uses) in, XML out.
// Reading them from storage is the caller's job.

/** One segment as written: its duration, size and URI relative to the MPD (`h264-720p/seg-00003.m4s`). */
export interface DashSegment extends MeasuredSegment {
  uri: string;
}

interface DashRepresentationBase {
  /** Representation@id: unique in the MPD, no whitespace (`h264-720p`, `audio`). */
  id: string;
  /** RFC 6381 codec of the track (`avc1.64001f`, `mp4a.40.2`), see `codecString` in hls-master.ts. */
  codecs: string;
  /**
   * The track's timescale (ticks per second: the `mdhd` timescale, ffprobe's `time_base`
   * denominator); the SegmentTimeline is written in it.
   */
  timescale: number;
  /** The init segment's URI relative to the MPD (`h264-720p/init_h264-720p.mp4`). */
  initialization: string;
  /**
   * Every segment, in order. Their URIs must differ only by a consecutive number
   * (`seg-00000.m4s`, `seg-00001.m4s`, ...): see {@link numberTemplate}.
   */
  segments: readonly DashSegment[];
}

export interface DashVideoRepresentation extends DashRepresentationBase {
  width: number;
  height: number;
  /** Frames per second as an exact rational (`30/1`, `30000/1001`) or an integer (`25`). */
  frameRate: string;
}

export interface DashAudioRepresentation extends DashRepresentationBase {
  /** Samples per second (`48000`). */
  sampleRate: number;
  /** Output channels (2 after the stereo downmix). */
  channels: number;
  /** RFC 5646 tag (`en`); omitted when unknown. */
  language?: string;
}

export interface DashManifestInput {
  /**
   * Video rungs in any order; written one AdaptationSet per codec, each sorted by bandwidth, lowest
   * first. Empty: audio only.
   */
  video: readonly DashVideoRepresentation[];
  /** The shared audio track; undefined for a video-only ladder. */
  audio?: DashAudioRepresentation;
}

/** The DASH profile written: SegmentTemplate + SegmentTimeline over separate segment files. */
export const DASH_PROFILE = 'urn:mpeg:dash:profile:isoff-live:2011';

/** `$Number$` addressing derived from a list of segment URIs. */
export interface NumberTemplate {
  /** SegmentTemplate@media, e.g. `h264-720p/seg-$Number%05d$.m4s` (`$` of the URI doubled). */
  media: string;
  /** SegmentTemplate@startNumber: the number of the first segment. */
  startNumber: number;
}

/**
 * The `$Number$` template that produces exactly `uris`, in order: they must be the same text around
 * one run of digits, counting up by one. The number is looked for in the file name before its
 * extension (`.m4s` has a digit too), last run first. Zero-padded numbers give `$Number%0<width>d$`
 * (a number wider than the padding still matches, as in printf). Throws RangeError when no template
 * produces the list (a player would fetch the wrong files).
 */
export function numberTemplate(uris: readonly string[]): NumberTemplate {
  const [first] = uris;
  if (first === undefined) throw new RangeError('segment URIs: expected at least one, got none');
  // The number lies between the last '/' and the extension's '.' (or the end).
  const nameStart = first.lastIndexOf('/') + 1;
  const dot = first.lastIndexOf('.');
  const nameEnd = dot > nameStart ? dot : first.length;
  const runs = [...first.slice(nameStart, nameEnd).matchAll(/\d+/g)].reverse();
  for (const run of runs) {
    const start = nameStart + run.index;
    const digits = run[0];
    const prefix = first.slice(0, start);
    const suffix = first.slice(start + digits.length);
    const startNumber = Number(digits);
    const padded = digits.length > 1 && digits.startsWith('0');
    const width = padded ? digits.length : 0;
    const produced = (i: number) => `${prefix}${String(startNumber + i).padStart(width, '0')}${suffix}`;
    if (!uris.every((uri, i) => uri === produced(i))) continue;
    // ISO/IEC 23009-1 5.3.9.4.4: a literal `$` in a template is written `$$`.
    const literal = (text: string) => text.replaceAll('$', '$$$$');
    const identifier = padded ? `$Number%0${width}d$` : '$Number$';
    return { media: `${literal(prefix)}${identifier}${literal(suffix)}`, startNumber };
  }
  throw new RangeError(
    `segment URIs: expected names that differ only by a consecutive number (seg-00000.m4s, seg-00001.m4s), got ${JSON.stringify(uris.slice(0, 3))}${uris.length > 3 ? ' ...' : ''}`,
  );
}

/** One SegmentTimeline `S` element: `count` segments of `durationTicks` from `startTicks`. */
export interface TimelineRun {
  startTicks: number;
  durationTicks: number;
  count: number;
}

/**
 * Segment durations in seconds to SegmentTimeline runs in ticks of `timescale`, starting at tick 0.
 * Each segment boundary is the running total rounded to the nearest tick, so rounding never
 * accumulates: the last boundary is the total duration, however many segments there are. Equal
 * consecutive durations share one run (`r`). EXTINF's microseconds are finer than half a tick of
 * any media timescale below 500 000, so the ticks are the muxer's own.
 */
export function segmentTimeline(durationsSec: readonly number[], timescale: number): TimelineRun[] {
  const runs: TimelineRun[] = [];
  let elapsedSec = 0;
  let start = 0;
  for (const durationSec of durationsSec) {
    elapsedSec += durationSec;
    const end = Math.round(elapsedSec * timescale);
    const duration = end - start;
    const last = runs.at(-1);
    if (last && last.durationTicks === duration) last.count += 1;
    else runs.push({ startTicks: start, durationTicks: duration, count: 1 });
    start = end;
  }
  return runs;
}

/**
 * ISO 8601 duration as xs:duration (`PT1H2M3.5S`), rounded UP to the millisecond so the
 * presentation never ends before its last sample.
 */
export function isoDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) {
    throw new RangeError(`duration: expected seconds >= 0, got ${seconds}`);
  }
  // Integer milliseconds; the epsilon keeps 4.0000000001 (float noise) from becoming 4.001.
  const ms = Math.ceil(seconds * 1000 - 1e-6);
  const hours = Math.floor(ms / 3_600_000);
  const minutes = Math.floor((ms % 3_600_000) / 60_000);
  const secMs = ms % 60_000;
  const sec = secMs % 1000 === 0 ? String(secMs / 1000) : (secMs / 1000).toFixed(3).replace(/0+$/, '');
  return `PT${hours > 0 ? `${hours}H` : ''}${minutes > 0 ? `${minutes}M` : ''}${sec}S`;
}

/** XML attribute value: the five predefined entities (XML 1.0 section 2.4), control characters refused. */
export function xmlAttribute(name: string, value: string | number): string {
  const text = String(value);
  // XML 1.0 allows only tab, LF and CR below U+0020, and an attribute normalises those to spaces.
  if ([...text].some((char) => char.charCodeAt(0) < 0x20)) {
    throw new RangeError(`${name}: expected no control characters, got ${JSON.stringify(text)}`);
  }
  const escaped = text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&apos;');
  return `${name}="${escaped}"`;
}

function positiveInteger(what: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(`${what}: expected an integer > 0, got ${value}`);
  }
  return value;
}

function nonEmpty(what: string, value: string): string {
  if (value.trim() === '')
    throw new RangeError(`${what}: expected a non-empty value, got ${JSON.stringify(value)}`);
  return value;
}

// ISO/IEC 23009-1 FrameRateType: `[0-9]*[0-9](/[0-9]*[0-9])?`; `30/1` is written `30`.
function frameRateText(id: string, frameRate: string): string {
  const match = /^(\d+)(?:\/(\d+))?$/.exec(frameRate);
  const numerator = Number(match?.[1]);
  const denominator = match?.[2] === undefined ? 1 : Number(match[2]);
  if (!match || numerator <= 0 || denominator <= 0) {
    throw new RangeError(
      `representation ${id} frameRate: expected a positive integer or rational (30, 30000/1001), got ${JSON.stringify(frameRate)}`,
    );
  }
  return denominator === 1 ? String(numerator) : `${numerator}/${denominator}`;
}

interface PreparedRepresentation {
  bandwidth: number;
  totalSec: number;
  maxSegmentSec: number;
  /** Segment boundaries in seconds, for the alignment check. */
  boundariesSec: number[];
  templateXml: string[];
}

function prepare(rep: DashRepresentationBase): PreparedRepresentation {
  if (/\s/.test(rep.id) || rep.id === '') {
    throw new RangeError(
      `representation id: expected a non-empty id without whitespace, got ${JSON.stringify(rep.id)}`,
    );
  }
  const timescale = positiveInteger(`representation ${rep.id} timescale`, rep.timescale);
  nonEmpty(`representation ${rep.id} codecs`, rep.codecs);
  nonEmpty(`representation ${rep.id} initialization`, rep.initialization);
  // Checks every duration (> 0) and size (>= 0); the URI is only a label in its messages.
  const { bandwidth } = variantBandwidth({ uri: `representation ${rep.id}`, segments: rep.segments });
  const template = numberTemplate(rep.segments.map((segment) => segment.uri));
  const durations = rep.segments.map((segment) => segment.durationSec);
  const runs = segmentTimeline(durations, timescale);
  const zero = runs.find((run) => run.durationTicks <= 0);
  if (zero) {
    throw new RangeError(
      `representation ${rep.id}: a segment at tick ${zero.startTicks} is shorter than one tick of timescale ${timescale}`,
    );
  }
  const lastRun = runs.at(-1)!;
  const totalTicks = lastRun.startTicks + lastRun.durationTicks * lastRun.count;
  const boundariesSec: number[] = [];
  let elapsed = 0;
  for (const duration of durations) {
    elapsed += duration;
    boundariesSec.push(elapsed);
  }

  const templateAttributes = [
    xmlAttribute('timescale', timescale),
    xmlAttribute('initialization', rep.initialization),
    xmlAttribute('media', template.media),
    xmlAttribute('startNumber', template.startNumber),
  ];
  const templateXml = [
    `<SegmentTemplate ${templateAttributes.join(' ')}>`,
    '  <SegmentTimeline>',
    // `t` only on the first run: each later one starts where the previous ends (5.3.9.6).
    ...runs.map((run, i) => {
      const t = i === 0 ? `t="${run.startTicks}" ` : '';
      const r = run.count > 1 ? ` r="${run.count - 1}"` : '';
      return `    <S ${t}d="${run.durationTicks}"${r}/>`;
    }),
    '  </SegmentTimeline>',
    '</SegmentTemplate>',
  ];
  return {
    bandwidth,
    totalSec: totalTicks / timescale,
    maxSegmentSec: Math.max(...durations),
    boundariesSec,
    templateXml,
  };
}

/**
 * Video representations grouped by codec (the sample entry before the first '.' of `codecs`:
 * `avc1`, `hvc1`, `av01`), groups in the order their first member comes. A DASH player switches
 * only within an AdaptationSet, and dash.js and Shaka expect one codec per set: each picks the set
 * whose codec the browser decodes, then switches among its sizes.
 */
function codecGroups<T extends { rep: DashVideoRepresentation }>(entries: readonly T[]): T[][] {
  const groups = new Map<string, T[]>();
  for (const entry of entries) {
    const key = entry.rep.codecs.split('.')[0]!;
    const group = groups.get(key);
    if (group) group.push(entry);
    else groups.set(key, [entry]);
  }
  return [...groups.values()];
}

const indent = (lines: readonly string[], depth: number) =>
  lines.map((line) => `${'  '.repeat(depth)}${line}`);

// Boundaries within a millisecond count as the same instant (different timescales round apart).
function aligned(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((value, i) => Math.abs(value - b[i]!) < 0.001);
}

/**
 * Writes a static DASH MPD: one video AdaptationSet per codec (in the order the codecs first come
 * in `video`), each with its rungs as Representations sorted by bandwidth, lowest first, and one
 * audio AdaptationSet. Each Representation's `bandwidth` is its
 * own peak segment bit rate, measured as the HLS master measures it (RFC 8216 4.1 windows), rounded
 * up: in DASH, audio is a separate AdaptationSet, so it is not added to the video. The presentation
 * lasts as long as its longest track. Throws RangeError for input that cannot be written as a valid
 * MPD (no tracks, duplicate ids, non-consecutive segment names, bad numbers).
 */
export function writeDashManifest(input: DashManifestInput): string {
  const { video, audio } = input;
  if (video.length === 0 && audio === undefined) {
    throw new RangeError('DASH manifest: expected video representations or an audio track, got neither');
  }
  const ids = [...video.map((rep) => rep.id), ...(audio ? [audio.id] : [])];
  const duplicate = ids.find((id, i) => ids.indexOf(id) !== i);
  if (duplicate !== undefined) {
    throw new RangeError(`DASH manifest: representation id ${JSON.stringify(duplicate)} is used twice`);
  }

  const videoPrepared = video.map((rep) => ({ rep, prepared: prepare(rep) }));
  const audioPrepared = audio ? prepare(audio) : undefined;
  const all = [...videoPrepared.map((entry) => entry.prepared), ...(audioPrepared ? [audioPrepared] : [])];
  const totalSec = Math.max(...all.map((prepared) => prepared.totalSec));
  const maxSegmentSec = Math.max(...all.map((prepared) => prepared.maxSegmentSec));

  const adaptationSets: string[] = [];
  let setId = 0;
  for (const group of codecGroups(videoPrepared)) {
    group.sort((a, b) => a.prepared.bandwidth - b.prepared.bandwidth || a.rep.height - b.rep.height);
    const frameRates = group.map(({ rep }) => frameRateText(rep.id, rep.frameRate));
    const first = group[0]!.prepared.boundariesSec;
    // Players may switch at any segment boundary only when the boundaries coincide in every rung.
    const segmentsAligned = group.every(({ prepared }) => aligned(prepared.boundariesSec, first));
    const setAttributes = [
      xmlAttribute('id', setId++),
      xmlAttribute('contentType', 'video'),
      xmlAttribute('mimeType', 'video/mp4'),
      ...(segmentsAligned ? [xmlAttribute('segmentAlignment', 'true')] : []),
      // Every segment starts with an IDR frame (keyframes forced at segment boundaries).
      xmlAttribute('startWithSAP', 1),
      xmlAttribute('maxWidth', Math.max(...group.map(({ rep }) => rep.width))),
      xmlAttribute('maxHeight', Math.max(...group.map(({ rep }) => rep.height))),
    ];
    const representations = group.flatMap(({ rep, prepared }, i) => {
      const attributes = [
        xmlAttribute('id', rep.id),
        xmlAttribute('bandwidth', prepared.bandwidth),
        xmlAttribute('codecs', rep.codecs),
        xmlAttribute('width', positiveInteger(`representation ${rep.id} width`, rep.width)),
        xmlAttribute('height', positiveInteger(`representation ${rep.id} height`, rep.height)),
        xmlAttribute('frameRate', frameRates[i]!),
        // Square pixels: the encoder sets them on every rung (setsar=1).
        xmlAttribute('sar', '1:1'),
      ];
      return [
        `<Representation ${attributes.join(' ')}>`,
        ...indent(prepared.templateXml, 1),
        '</Representation>',
      ];
    });
    adaptationSets.push(
      `<AdaptationSet ${setAttributes.join(' ')}>`,
      ...indent(representations, 1),
      '</AdaptationSet>',
    );
  }
  if (audio && audioPrepared) {
    const setAttributes = [
      xmlAttribute('id', setId++),
      xmlAttribute('contentType', 'audio'),
      xmlAttribute('mimeType', 'audio/mp4'),
      ...(audio.language === undefined
        ? []
        : [xmlAttribute('lang', nonEmpty('audio language', audio.language))]),
      xmlAttribute('segmentAlignment', 'true'),
      // Every AAC frame is a sync sample.
      xmlAttribute('startWithSAP', 1),
    ];
    const attributes = [
      xmlAttribute('id', audio.id),
      xmlAttribute('bandwidth', audioPrepared.bandwidth),
      xmlAttribute('codecs', audio.codecs),
      xmlAttribute('audioSamplingRate', positiveInteger('audio sampleRate', audio.sampleRate)),
    ];
    const channels = [
      // ISO/IEC 23009-1 5.8.5.4: the channel count as the value.
      `<AudioChannelConfiguration ${xmlAttribute('schemeIdUri', 'urn:mpeg:dash:23003:3:audio_channel_configuration:2011')} ${xmlAttribute('value', positiveInteger('audio channels', audio.channels))}/>`,
    ];
    adaptationSets.push(
      `<AdaptationSet ${setAttributes.join(' ')}>`,
      `  <Representation ${attributes.join(' ')}>`,
      ...indent([...channels, ...audioPrepared.templateXml], 2),
      '  </Representation>',
      '</AdaptationSet>',
    );
  }

  const mpdAttributes = [
    xmlAttribute('xmlns', 'urn:mpeg:dash:schema:mpd:2011'),
    xmlAttribute('profiles', DASH_PROFILE),
    xmlAttribute('type', 'static'),
    xmlAttribute('mediaPresentationDuration', isoDuration(totalSec)),
    // One whole segment buffered before play: with `bandwidth` at the peak segment rate, that is
    // enough for continuous playback (ISO/IEC 23009-1 5.3.5.2).
    xmlAttribute('minBufferTime', isoDuration(maxSegmentSec)),
  ];
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<MPD ${mpdAttributes.join(' ')}>`,
    `  <Period ${xmlAttribute('id', '0')} ${xmlAttribute('start', 'PT0S')}>`,
    ...indent(adaptationSets, 2),
    '  </Period>',
    '</MPD>',
  ];
  return `${lines.join('\n')}\n`;
}
