import { join } from 'node:path';
import type { LadderPlan, Rung } from '../domain/ladder.js';
import { type RunOptions, run } from './ffmpeg.js';
import type { LadderOutputLayout } from './ladder-encode.js';

// The download: one ordinary MP4 (H.264 + AAC) that any player or editor opens, remuxed from the
// segments the ladder already has, so it costs a copy, not an encode. `+faststart` moves the index
// (moov) before the media (mdat): a browser can start playing, or a download tool read the length,
// before the whole file has arrived.
//
// The inputs are the rung's and the audio rendition's media playlists, read by ffmpeg's hls
// demuxer. Their timestamps are the package's own (ladder-encode.ts: video and audio at
// presentation time 0, the video's B-frame delay as a negative decode time), and the mp4 muxer
// keeps them: checked here on ffmpeg 5.1, the file starts at 0 with both tracks, the video as long
// as the rung's EXTINF total and every frame decodes.

/** The short side a download is at most: HD, small enough to keep, sharp enough to watch. */
const DOWNLOAD_MAX_SHORT_SIDE_PX = 720;

/**
 * The rung the download is remuxed from: the largest H.264 rung whose short side is at most 720
 * px, or the smallest H.264 rung when all are larger (a ladder without a 720p one). Null when the
 * plan has no H.264 rung (audio only). Pure.
 */
export function progressiveRung(plan: LadderPlan): Rung | null {
  const h264 = plan.rungs.filter((rung) => rung.codec === 'h264');
  const shortSide = (rung: Rung) => Math.min(rung.widthPx, rung.heightPx);
  const bySize = [...h264].sort((a, b) => shortSide(b) - shortSide(a));
  return bySize.find((rung) => shortSide(rung) <= DOWNLOAD_MAX_SHORT_SIDE_PX) ?? bySize.at(-1) ?? null;
}

export interface ProgressiveMp4Options extends RunOptions {
  /** The directory `encodeLadder` wrote to. */
  outDir: string;
  /** What `encodeLadder` returned. */
  layout: LadderOutputLayout;
  /** The rung to remux, usually `progressiveRung(plan).id`. */
  rungId: string;
  /** Where the MP4 is written (overwritten when it exists). Must not be inside a rung's directory. */
  outputPath: string;
}

/** The ffmpeg arguments (no `ffmpeg` itself) of {@link writeProgressiveMp4}. Pure. */
export function progressiveMp4Args(options: Omit<ProgressiveMp4Options, keyof RunOptions>): string[] {
  const rung = options.layout.rungs.find((r) => r.rungId === options.rungId);
  if (rung === undefined) {
    throw new Error(
      `rung ${options.rungId} is not in the ladder (${options.layout.rungs.map((r) => r.rungId).join(', ') || 'no video rungs'})`,
    );
  }
  const audio = options.layout.audio;
  // `file:` keeps a path beginning with "-" or containing "proto:" from being read as anything else.
  const input = (playlist: string) => ['-i', `file:${join(options.outDir, playlist)}`];
  return [
    '-hide_banner',
    '-v',
    'error',
    '-nostdin',
    '-y',
    ...input(rung.playlist),
    ...(audio === null ? [] : input(audio.playlist)),
    '-map',
    '0:v:0',
    ...(audio === null ? [] : ['-map', '1:a:0']),
    // A remux: the rung's H.264 and the AAC rendition as they are.
    '-c',
    'copy',
    // The playlists carry no tags, but the muxer would copy the first input's (none wanted).
    '-map_metadata',
    '-1',
    // moov before mdat (a second pass over the file once it is written).
    '-movflags',
    '+faststart',
    '-f',
    'mp4',
    `file:${options.outputPath}`,
  ];
}

/**
 * Remuxes rung `rungId` and the audio rendition (when the ladder has one) into one MP4 at
 * `outputPath`. Throws an Error when the rung is not in `layout`; rejects with a `ToolError` when
 * ffmpeg fails, times out or is aborted (a partly written file is the caller's to remove).
 */
export async function writeProgressiveMp4(options: ProgressiveMp4Options): Promise<void> {
  const { timeoutMs, signal, ...rest } = options;
  await run('ffmpeg', progressiveMp4Args(rest), { timeoutMs, signal });
}
