import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { getOptions, parse, setOptions, type types } from 'hls-parser';
import type { Catalog } from '../catalog/catalog.js';
import type { Asset, Rendition } from '../domain/asset.js';
import { type FindingCode, resolvePackageUri, validateHlsPackage } from '../domain/hls-validate.js';
import { AppError, errorMessage } from '../errors.js';
import { mapLimit } from '../lib/map-limit.js';
import { probeTrack } from '../media/package-ladder.js';
import { STREAM_PREFIX } from '../pipeline/video/stream-files.js';
import type { BlobInfo, BlobStore } from '../storage/blob-store.js';

// `check`: the stored package of a ready video or audio, re-validated as a player would find it
// through delivery. A player reaches a file only through its `stream/` rendition row (that is how
// /stream looks files up), so a file "exists" when it has a row AND its blob is there. Then the
// same validator the pipeline ran before publishing (hls-validate.ts) reads the playlists from the
// blob store, with the CODECS ffprobe reads from the stored init + first segment of each rendition.
//
// Findings of our own, beside the validator's: a row whose blob is missing, empty or of another
// size than recorded (a truncated copy plays until the player reaches the cut), a file the asset
// record links to that is not in the package, a track ffprobe cannot read. A missing or empty file
// that a playlist references is left to the validator, whose finding names the playlist and line.

export type StreamFindingCode =
  | FindingCode
  | 'FILE_MISSING'
  | 'FILE_EMPTY'
  | 'FILE_SIZE_MISMATCH'
  | 'TRACK_UNREADABLE';

export interface StreamFinding {
  code: StreamFindingCode;
  /** One sentence naming the file (package path) and what is wrong. */
  message: string;
  /** The package path of the file concerned, when there is one. */
  path?: string;
}

export interface StreamCheckReport {
  /** True when there are no findings. */
  ok: boolean;
  checkedAt: string;
  /** Playlists read: the master and every media playlist found. */
  playlists: number;
  /** Media segments the media playlists list (init segments not counted). */
  segments: number;
  findings: StreamFinding[];
}

export interface StreamCheckDeps {
  catalog: Pick<Catalog, 'listRenditions'>;
  blobs: Pick<BlobStore, 'head' | 'get'>;
  /** Where the files ffprobe reads are put for a moment (the process's scratch folder). */
  scratchDir: string;
  /** ffprobe's time limit per track. @default 60_000 */
  probeTimeoutMs?: number;
  now?: () => Date;
}

const DEFAULT_MASTER = 'master.m3u8';
/** Larger "playlists" are not read into memory: a 4-hour film's media playlist is ~200 KiB. */
const MAX_PLAYLIST_BYTES = 16 * 1024 * 1024;
const HEAD_CONCURRENCY = 8;
// Validator findings whose message ends by naming the file looked for: `(looked for x)` / `(x)`.
const NAMES_FILE_AT_END = new Set<StreamFindingCode>([
  'PLAYLIST_MISSING',
  'SEGMENT_MISSING',
  'SEGMENT_EMPTY',
  'INIT_SEGMENT_MISSING',
  'INIT_SEGMENT_EMPTY',
]);

interface StoredFile {
  row: Rendition;
  /** The blob's metadata; undefined when the blob is gone. */
  info: BlobInfo | undefined;
}

interface MediaToProbe {
  path: string;
  kind: 'video' | 'audio';
  playlist: types.MediaPlaylist;
  text: string;
}

/** The package path a validator finding is about: the file it looked for, else its playlist. */
function findingPath(code: StreamFindingCode, message: string): string | undefined {
  if (NAMES_FILE_AT_END.has(code)) {
    const named = /\((?:looked for )?([^()\s]+)\)\.$/.exec(message)?.[1];
    if (named) return named;
  }
  return /^(\S+?)(?: line \d+)?:/.exec(message)?.[1];
}

// hls-parser keeps its options in module state; the validator runs it strict, we only need the
// structure (the validator reports what is wrong), so lenient and silent, then put back.
function parseLeniently(text: string): types.MasterPlaylist | types.MediaPlaylist | undefined {
  const saved = getOptions();
  setOptions({ strictMode: false, silent: true });
  try {
    return parse(text);
  } catch {
    return undefined;
  } finally {
    setOptions({ strictMode: saved.strictMode ?? false, silent: saved.silent ?? false });
  }
}

/** The stream facts of the record: the package paths it links to. */
function linkedPaths(asset: Asset): { master: string; others: string[] } {
  const stream = (asset.extra.stream ?? {}) as Record<string, unknown>;
  const text = (value: unknown) => (typeof value === 'string' && value !== '' ? [value] : []);
  const poster = (stream.poster ?? {}) as Record<string, unknown>;
  const storyboard = (stream.storyboard ?? {}) as Record<string, unknown>;
  const sheets = Array.isArray(storyboard.sheets) ? storyboard.sheets.flatMap(text) : [];
  return {
    master: text(stream.hls)[0] ?? DEFAULT_MASTER,
    others: [
      ...text(stream.dash),
      ...text(poster.jpeg),
      ...text(poster.webp),
      ...text(storyboard.vtt),
      ...sheets,
      ...text(stream.download),
    ],
  };
}

/**
 * Re-validates the stored stream package of the current version of `asset` (the caller has checked
 * that it may see it). Throws `STREAM_UNAVAILABLE` (409) when the asset is not a ready video or
 * audio. Findings are the answer, never thrown: an empty list means a player finds every file.
 */
export async function checkStreamPackage(deps: StreamCheckDeps, asset: Asset): Promise<StreamCheckReport> {
  if (asset.type === 'image' || asset.status !== 'ready') {
    throw new AppError(
      'STREAM_UNAVAILABLE',
      asset.type === 'image'
        ? `Asset ${asset.id} is an image: only videos and audio have a stream package to check.`
        : `Asset ${asset.id} is ${asset.status}: only a ready video or audio has a stream package to check.`,
    );
  }
  const checkedAt = (deps.now?.() ?? new Date()).toISOString();
  const rows = (await deps.catalog.listRenditions(asset.id, asset.versionNumber))
    .filter((row) => row.name.startsWith(STREAM_PREFIX))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const files = new Map<string, StoredFile>();
  await mapLimit(rows, HEAD_CONCURRENCY, async (row) => {
    files.set(row.name.slice(STREAM_PREFIX.length), { row, info: await deps.blobs.head(row.key) });
  });
  const present = (path: string) => {
    const file = files.get(path);
    return file?.info ? { key: file.row.key, size: file.info.size } : undefined;
  };
  const readText = async (path: string): Promise<string | undefined> => {
    const file = present(path);
    if (!file || file.size > MAX_PLAYLIST_BYTES) return undefined;
    const chunks: Buffer[] = [];
    for await (const chunk of await deps.blobs.get(file.key)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  };

  const findings: StreamFinding[] = [];
  const links = linkedPaths(asset);
  const referenced = new Set<string>();
  let playlists = 0;
  let segments = 0;

  const masterPath = links.master;
  referenced.add(masterPath); // a missing master is reported once, below, not also as a file
  const masterText = await readText(masterPath);
  const toProbe: MediaToProbe[] = [];
  let master: types.MasterPlaylist | undefined;
  const mediaPlaylists: Record<string, string> = {};
  if (masterText === undefined) {
    findings.push({
      code: 'PLAYLIST_MISSING',
      message: `${masterPath}: the master playlist is not in the stored package${files.has(masterPath) ? ' (its blob is missing or too large)' : ''}.`,
      path: masterPath,
    });
  } else {
    playlists++;
    const parsed = parseLeniently(masterText);
    master = parsed?.isMasterPlaylist ? parsed : undefined;
    // Every media playlist once, however many variants share it (the audio group).
    const kinds = new Map<string, 'video' | 'audio'>();
    for (const variant of master?.variants.filter((v) => !v.isIFrameOnly) ?? []) {
      const own = resolvePackageUri(masterPath, variant.uri);
      if (!kinds.has(own)) kinds.set(own, variant.resolution ? 'video' : 'audio');
      for (const rendition of variant.audio) {
        if (rendition.uri !== undefined) kinds.set(resolvePackageUri(masterPath, rendition.uri), 'audio');
      }
    }
    for (const [path, kind] of kinds) {
      const text = await readText(path);
      if (text === undefined) continue; // the validator reports the missing playlist
      playlists++;
      referenced.add(path);
      mediaPlaylists[path] = text;
      const media = parseLeniently(text);
      if (!media || media.isMasterPlaylist) continue;
      segments += media.segments.length;
      for (const segment of media.segments) {
        referenced.add(resolvePackageUri(path, segment.uri));
        if (segment.map) referenced.add(resolvePackageUri(path, segment.map.uri));
      }
      toProbe.push({ path, kind, playlist: media, text });
    }
  }

  for (const [path, { row, info }] of files) {
    if (!info) {
      if (!referenced.has(path)) {
        findings.push({
          code: 'FILE_MISSING',
          message: `${path}: listed in the catalog, but its stored bytes are missing.`,
          path,
        });
      }
    } else if (info.size === 0) {
      if (!referenced.has(path)) {
        findings.push({ code: 'FILE_EMPTY', message: `${path}: is stored empty (0 bytes).`, path });
      }
    } else if (info.size !== row.size) {
      findings.push({
        code: 'FILE_SIZE_MISMATCH',
        message: `${path}: ${info.size} bytes are stored, the catalog recorded ${row.size} (truncated or replaced).`,
        path,
      });
    }
  }
  for (const path of links.others) {
    if (!files.has(path)) {
      findings.push({
        code: 'FILE_MISSING',
        message: `${path}: the asset record links to it, but it is not in the stored package.`,
        path,
      });
    }
  }

  if (masterText !== undefined) {
    const codecs = await probeCodecs(deps, toProbe, present, findings);
    const expectedCodecs: Record<string, string> = {};
    for (const variant of master?.variants.filter((v) => !v.isIFrameOnly) ?? []) {
      const own = resolvePackageUri(masterPath, variant.uri);
      const audio = variant.audio
        .map((rendition) =>
          rendition.uri === undefined ? own : resolvePackageUri(masterPath, rendition.uri),
        )
        .filter((path) => path !== own);
      const read = [own, ...new Set(audio)].map((path) => codecs.get(path));
      // A track that could not be probed is reported on its own; its variant is taken at its word.
      expectedCodecs[variant.uri] = read.every((c) => c !== undefined)
        ? read.join(',')
        : (variant.codecs ?? '');
    }
    for (const finding of validateHlsPackage({
      masterPath,
      masterText,
      mediaPlaylists,
      sizeOf: (path) => present(path)?.size,
      ...(asset.durationSec === null ? {} : { expectedDurationSec: asset.durationSec }),
      expectedCodecs,
    })) {
      const path = findingPath(finding.code, finding.message);
      findings.push({ ...finding, ...(path === undefined ? {} : { path }) });
    }
  }

  return { ok: findings.length === 0, checkedAt, playlists, segments, findings };
}

/**
 * The codec string of each media playlist's track, read by ffprobe from its stored init segment
 * followed by its first stored non-empty segment (as packaging read them before publishing). A
 * playlist without both is skipped: the validator reports the missing file.
 */
async function probeCodecs(
  deps: StreamCheckDeps,
  media: readonly MediaToProbe[],
  present: (path: string) => { key: string; size: number } | undefined,
  findings: StreamFinding[],
): Promise<Map<string, string>> {
  const codecs = new Map<string, string>();
  if (media.length === 0) return codecs;
  const dir = await mkdtemp(join(deps.scratchDir, 'stream-check-'));
  try {
    // One at a time: each probe is a process, and a check must not crowd out delivery.
    for (const { path, kind, playlist, text } of media) {
      const mapped = playlist.segments.find((segment) => segment.map)?.map;
      if (!mapped) continue;
      const initPath = resolvePackageUri(path, mapped.uri);
      const init = present(initPath);
      const segments = playlist.segments.map((segment) => ({
        uri: segment.uri,
        path: resolvePackageUri(path, segment.uri),
        durationSec: segment.duration,
      }));
      const first = segments.find((segment) => (present(segment.path)?.size ?? 0) > 0);
      if (!init || init.size === 0 || !first) continue;
      try {
        for (const file of [initPath, first.path]) {
          const target = resolve(dir, file);
          // Package paths come from stored playlists: never let one write outside the temp folder.
          if (!target.startsWith(`${resolve(dir)}${sep}`)) throw new Error(`${file} is not a package path`);
          await mkdir(dirname(target), { recursive: true });
          await pipeline(await deps.blobs.get(present(file)!.key), createWriteStream(target));
        }
        const probed = await probeTrack(
          dir,
          {
            output: { name: path, playlist: path, dir: join(dir, dirname(path)) },
            playlistPath: path,
            text,
            targetDurationSec: playlist.targetDuration,
            init: { uri: mapped.uri, path: initPath },
            segments: [first],
            sizes: new Map([
              [initPath, init.size],
              [first.path, present(first.path)!.size],
            ]),
          },
          kind,
          { timeoutMs: deps.probeTimeoutMs ?? 60_000 },
        );
        codecs.set(path, probed.codecs);
      } catch (err) {
        findings.push({
          code: 'TRACK_UNREADABLE',
          message: `${path}: ffprobe cannot read its ${kind} track from ${initPath} + ${first.path}: ${errorMessage(err)}`,
          path,
        });
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return codecs;
}
