import { createWriteStream } from 'node:fs';
import { mkdir, readdir, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { pipeline as pipeStreams } from 'node:stream/promises';
import { type Chunk, planChunks } from '../../domain/chunks.js';
import type { LadderPlan } from '../../domain/ladder.js';
import { AppError } from '../../errors.js';
import { mapLimit } from '../../lib/map-limit.js';
import { joinChunks } from '../../media/chunk-encode.js';
import type { VideoProbe } from '../../media/ffprobe-parse.js';
import { encodeLadder, type LadderOutputLayout } from '../../media/ladder-encode.js';
import { packageLadder } from '../../media/package-ladder.js';
import { progressiveRung, writeProgressiveMp4 } from '../../media/progressive-mp4.js';
import type { StepContext, StepDefinition } from '../step.js';
import { type ChunkOutput, type EncodeOutput, planOutput, probeOutput } from './outputs.js';
import { STREAM_PREFIX, streamContentType } from './stream-files.js';

// Long tools run under the step's own timeout (its abort signal); this only bounds a hung process.
const TOOL_TIMEOUT_MS = 24 * 3600_000;
/** Parallel writes of the package's files to the blob store. */
const UPLOAD_CONCURRENCY = 4;
/** Shares of the step's progress: encoding, then packaging and storing. */
const ENCODE_SHARE = 85;

/** The chunks a source is encoded in: one unless it is longer than the configured chunk length. */
export function chunksFor(plan: LadderPlan, probe: VideoProbe, chunkSec: number): Chunk[] {
  const duration = probe.durationSec;
  if (plan.rungs.length === 0 || duration === null || !(duration > 0)) {
    return [{ index: 0, startSec: 0, durationSec: duration ?? 0 }];
  }
  return planChunks(duration, chunkSec, plan.segmentDurationSec);
}

/** What ladder-encode needs from the probe: the source's constant rate, or null when it varies. */
export function sourceFrameRate(probe: VideoProbe): number | null {
  const video = probe.video;
  if (video === null || video.variableFrameRate) return null;
  return video.frameRate;
}

/**
 * Encodes the planned ladder, packages it (HLS master + DASH MPD over the same CMAF segments, and
 * the progressive MP4), validates it as a player would find it and stores every file under
 * `stream/`. A source longer than the chunk length is encoded by chunk jobs on any worker: the
 * step queues them, waits for them, and joins the chunks without re-encoding.
 */
export const encodeStep: StepDefinition = {
  name: 'encode',
  weight: 20,
  // Up to 20 s of work per second of source (a slow preset on a small machine), plus 10 minutes.
  timeoutMs: (outputs) => 600_000 + 20_000 * (probeOutput(outputs).probe.durationSec ?? 0),
  async run(ctx): Promise<EncodeOutput> {
    const { probe } = probeOutput(ctx.outputs);
    const { plan } = planOutput(ctx.outputs);
    const source = await ctx.sourcePath();
    const chunks = chunksFor(plan, probe, ctx.settings.video.chunkSec);
    const outDir = join(ctx.scratchDir, 'package');
    const onProgress = (percent: number) => void ctx.progress((percent * ENCODE_SHARE) / 100);

    const temporaryKeys: string[] = [];
    let layout: LadderOutputLayout;
    if (chunks.length === 1) {
      layout = await encodeLadder(plan, {
        input: source,
        outDir,
        sourceFrameRateFps: sourceFrameRate(probe),
        ...(probe.video ? { videoStreamIndex: probe.video.index } : {}),
        ...(probe.audio ? { audioStreamIndex: probe.audio.index } : {}),
        preset: ctx.settings.video.preset,
        durationSec: probe.durationSec,
        onProgress,
        timeoutMs: TOOL_TIMEOUT_MS,
        signal: ctx.signal,
      });
    } else {
      // Chunk jobs take most of the encode's share; the join, packaging and storing the rest.
      const fetched = await awaitChunks(ctx, chunks, (p) => onProgress(p * 0.8));
      const chunkDirs = fetched.dirs;
      temporaryKeys.push(...fetched.keys);
      layout = await joinChunks(plan, {
        input: source,
        chunkDirs,
        outDir,
        ...(probe.audio ? { audioStreamIndex: probe.audio.index } : {}),
        durationSec: probe.durationSec,
        onProgress: (p) => onProgress(80 + p * 0.2),
        timeoutMs: TOOL_TIMEOUT_MS,
        signal: ctx.signal,
      });
    }

    const expected = probe.durationSec ?? 0;
    const packaged = await packageLadder({
      plan,
      layout,
      outDir,
      expectedDurationSec: expected,
      timeoutMs: TOOL_TIMEOUT_MS,
      signal: ctx.signal,
    });
    if (packaged.findings.length > 0) throw packageRefusal(packaged.findings, expected);

    const downloadRung = ctx.settings.video.download ? progressiveRung(plan) : null;
    if (downloadRung !== null) {
      await writeProgressiveMp4({
        outDir,
        layout,
        rungId: downloadRung.id,
        outputPath: join(outDir, 'download.mp4'),
        timeoutMs: TOOL_TIMEOUT_MS,
        signal: ctx.signal,
      });
    }
    await ctx.progress(ENCODE_SHARE + 5);

    const files = await listFiles(outDir);
    let bytes = 0;
    await mapLimit(files, UPLOAD_CONCURRENCY, async (path) => {
      ctx.signal.throwIfAborted();
      const rel = relative(outDir, path).split('\\').join('/');
      const { size } = await ctx.writeOutputFile({
        name: `${STREAM_PREFIX}${rel}`,
        path,
        contentType: streamContentType(rel),
      });
      bytes += size;
    });
    return {
      mode: chunks.length === 1 ? 'one-piece' : 'chunked',
      chunks: chunks.length,
      variants: packaged.variants,
      files: files.length,
      bytes,
      download: downloadRung !== null,
      dash: true,
      // The chunk files: deleted by the runner once the run is published.
      temporaryKeys,
    };
  },
};

/** How often a run waiting for its chunk jobs looks at them. */
const CHUNK_POLL_MS = 1000;

/**
 * Queues the chunk jobs that are not done yet and waits until every chunk is encoded (by any
 * worker: chunk jobs have their own slots, so this wait never keeps them from running), then
 * downloads the chunk files into one directory per chunk. A chunk job that failed for good fails
 * the run with its reason; the wait itself is bounded by the step's timeout (its abort signal).
 */
async function awaitChunks(
  ctx: StepContext,
  chunks: readonly Chunk[],
  onProgress: (percent: number) => void,
): Promise<{ dirs: string[]; keys: string[] }> {
  let done = await ctx.chunks.finished();
  const jobs = await ctx.chunks.dispatch(
    chunks.length,
    chunks.filter((c) => !done.has(c.index)),
  );
  let reported = -1;
  while (done.size < chunks.length) {
    ctx.signal.throwIfAborted();
    if (done.size !== reported) {
      reported = done.size;
      onProgress((done.size / chunks.length) * 100);
      ctx.logger.info({ done: done.size, total: chunks.length }, 'waiting for chunk jobs');
    }
    await sleep(CHUNK_POLL_MS, ctx.signal);
    done = await ctx.chunks.finished();
    if ((await ctx.chunks.runStatus()) === 'failed') {
      throw new AppError(
        'PACKAGE_INVALID',
        'A chunk of this video could not be encoded; see the run history.',
      );
    }
    for (const { index, jobId } of jobs) {
      if (done.has(index)) continue;
      const job = await ctx.chunks.job(jobId);
      if (job?.status === 'dead' || job?.status === 'completed') {
        // Completed without a recorded chunk: its handler found the run finished or failed it.
        throw new AppError(
          'PACKAGE_INVALID',
          `Encoding chunk ${index + 1} of ${chunks.length} failed: ${job.lastError ?? 'see the run history'}`,
        );
      }
    }
  }
  const dirs: string[] = [];
  const keys: string[] = [];
  for (const chunk of chunks) {
    const dir = join(ctx.scratchDir, 'chunks', String(chunk.index));
    await mkdir(dir, { recursive: true });
    const output = done.get(chunk.index) as ChunkOutput;
    for (const file of output.files) {
      ctx.signal.throwIfAborted();
      await pipeStreams(await ctx.blobs.get(file.key), createWriteStream(join(dir, file.name)));
      keys.push(file.key);
    }
    dirs.push(dir);
  }
  return { dirs, keys };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

async function listFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...(await listFiles(path)));
    else if (entry.isFile() && (await stat(path)).size >= 0) found.push(path);
  }
  return found.sort();
}

/**
 * The validation's findings as a reason a person understands. A package shorter than the source
 * almost always means the source itself ends early (a cut-off upload or recording): its header
 * promises more than its data holds.
 */
function packageRefusal(
  findings: readonly { code: string; message: string }[],
  expectedSec: number,
): AppError {
  const short = findings.find((f) => f.code === 'DURATION_MISMATCH');
  if (short) {
    return new AppError(
      'PACKAGE_INVALID',
      `The file's header says it lasts ${expectedSec.toFixed(1)} s but its video and audio data end sooner: the file is probably truncated or damaged. Upload the complete file. (${short.message})`,
    );
  }
  const listed = findings
    .slice(0, 3)
    .map((f) => f.message)
    .join(' ');
  return new AppError(
    'PACKAGE_INVALID',
    `The encoded stream did not pass validation, so it was not published: ${listed}${findings.length > 3 ? ` (and ${findings.length - 3} more)` : ''}`,
  );
}
