// Chunked parallel encoding: a long source is cut into chunks, each encoded as its own job on any
// worker, then joined without re-encoding (ffmpeg's concat demuxer, `-c copy`). For the join to be
// indistinguishable from a one-piece encode, every chunk must start on a keyframe of the output:
// chunk boundaries are whole multiples of the segment duration, where the fixed GOP puts forced
// keyframes anyway. Pure planning and the concat list; the encoding comes later.

export interface Chunk {
  index: number;
  /** Where the chunk starts in the source, seconds (a multiple of the segment duration). */
  startSec: number;
  durationSec: number;
}

/**
 * Chunks of about `chunkSec` (rounded down to whole segments, at least one segment) covering
 * `durationSec`. A source no longer than one chunk (plus half a chunk of slack, so a 10-minute
 * chunk length never leaves a 20-second tail job) is one chunk. The last chunk absorbs a remainder
 * shorter than half a chunk.
 */
export function planChunks(durationSec: number, chunkSec: number, segmentSec: number): Chunk[] {
  if (!(durationSec > 0) || !(chunkSec > 0) || !(segmentSec > 0)) {
    throw new RangeError(
      `Chunk planning needs positive durations; got ${durationSec} s, chunk ${chunkSec} s, segment ${segmentSec} s.`,
    );
  }
  const length = Math.max(1, Math.floor(chunkSec / segmentSec)) * segmentSec;
  if (durationSec <= length * 1.5) return [{ index: 0, startSec: 0, durationSec }];
  const chunks: Chunk[] = [];
  let start = 0;
  while (durationSec - start > length * 1.5) {
    chunks.push({ index: chunks.length, startSec: start, durationSec: length });
    start += length;
  }
  chunks.push({ index: chunks.length, startSec: start, durationSec: durationSec - start });
  return chunks;
}

/**
 * The concat demuxer's list for the encoded chunk files, in order. Paths are quoted as ffconcat
 * requires (a single quote becomes '\''); no `inpoint`/`outpoint` and no `-output_ts_offset`: the
 * demuxer already offsets each file by the previous ones' durations (adding an offset doubled the
 * total duration on ffmpeg 5.1).
 */
export function concatList(files: readonly string[]): string {
  const quote = (path: string) => `'${path.replaceAll("'", "'\\''")}'`;
  return `ffconcat version 1.0\n${files.map((file) => `file ${quote(file)}\n`).join('')}`;
}
