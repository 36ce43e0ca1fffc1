import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline as pipeStreams } from 'node:stream/promises';
import type { Logger } from 'pino';
import type { Catalog } from '../../catalog/catalog.js';
import { newId } from '../../domain/ids.js';
import { errorMessage } from '../../errors.js';
import { isOutage } from '../../lib/outage.js';
import { encodeChunk } from '../../media/chunk-encode.js';
import type { BlobStore } from '../../storage/blob-store.js';
import { stepOutputKey } from '../../storage/keys.js';
import { chunkIndexOfStep, chunkStepName, type JobPayloads } from '../jobs.js';
import { isPermanentFailure, stepSpan, type VideoSettings } from '../step.js';
import { sourceFrameRate } from './encode.js';
import { videoPipeline } from './index.js';
import type { ChunkOutput, PlanOutput, ProbeOutput } from './outputs.js';

export interface ChunkJobDeps {
  catalog: Catalog;
  blobs: BlobStore;
  logger: Logger;
  /** This process's scratch folder (the runner's). */
  scratchRoot: string;
  video: VideoSettings;
  stepTimeoutMs: number;
}

export interface ChunkAttempt {
  attempt: number;
  maxAttempts: number;
  signal: AbortSignal;
  progress(percent: number): Promise<void>;
}

/**
 * Encodes one chunk of a run's ladder (a job of its own, on any worker), stores its files and
 * records it in the run's history as `encode.chunk-<i>`, where the run's encode step, waiting,
 * finds it. The step is recorded when the chunk is done (never left `running`: a run attempt that
 * starts meanwhile must not mark it abandoned). A chunk that fails for good fails the run.
 */
export async function executeChunk(
  deps: ChunkJobDeps,
  payload: JobPayloads['pipeline.chunk'],
  attempt: ChunkAttempt,
): Promise<void> {
  const { catalog, blobs } = deps;
  const { runId, chunk, total } = payload;
  const logger = deps.logger.child({ runId, chunk: chunk.index });
  const run = await catalog.getRun(runId);
  if (!run || run.status === 'succeeded' || run.status === 'failed') return;
  const stepName = chunkStepName(chunk.index);
  const history = await catalog.listSteps(runId);
  if (history.some((s) => s.name === stepName && s.status === 'succeeded')) return;
  const probe = (history.find((s) => s.name === 'probe' && s.status === 'succeeded')?.output ??
    null) as ProbeOutput | null;
  const plan = (history.find((s) => s.name === 'plan' && s.status === 'succeeded')?.output ??
    null) as PlanOutput | null;
  const version = await catalog.getVersion(run.assetId, run.version);
  if (!probe?.probe || !plan?.plan || !version) {
    await catalog.failRun(
      runId,
      'A chunk job found its run without a probe or a plan.',
      new Date().toISOString(),
    );
    return;
  }

  const startedAt = new Date().toISOString();
  const record = async (finish: Parameters<Catalog['finishStep']>[1]) => {
    const stepId = newId('stp');
    const attemptNumber = (await catalog.listSteps(runId)).filter((s) => s.name === stepName).length + 1;
    await catalog.startStep({ id: stepId, runId, name: stepName, attempt: attemptNumber, startedAt });
    await catalog.finishStep(stepId, finish);
  };
  const dir = join(deps.scratchRoot, `${runId}-chunk${chunk.index}-${newId('stp').slice(4)}`);
  const timeout = AbortSignal.timeout(deps.stepTimeoutMs);
  const signal = AbortSignal.any([attempt.signal, timeout]);
  try {
    await mkdir(join(dir, 'out'), { recursive: true });
    const input = join(dir, 'original');
    await pipeStreams(await blobs.get(version.originalKey), createWriteStream(input));
    const encoded = await encodeChunk(plan.plan, {
      input,
      outDir: join(dir, 'out'),
      chunk,
      sourceFrameRateFps: sourceFrameRate(probe.probe),
      ...(probe.probe.video ? { videoStreamIndex: probe.probe.video.index } : {}),
      preset: deps.video.preset,
      timeoutMs: deps.stepTimeoutMs,
      signal,
      onProgress: (percent: number) => void attempt.progress(percent),
    });
    // The run may have failed (another chunk) or been finished meanwhile: then nothing is stored.
    const now = await catalog.getRun(runId);
    if (now?.status !== 'running' && now?.status !== 'queued') return;
    const files: ChunkOutput['files'] = [];
    for (const file of encoded) {
      const name = file.path.slice(file.path.lastIndexOf('/') + 1);
      // Under the run's id: a reprocess of the same version never shares (or deletes) these files.
      const key = stepOutputKey(run.assetId, run.version, 'encode', `chunks/${runId}/${chunk.index}/${name}`);
      const info = await blobs.put(key, createReadStream(file.path), { contentType: 'video/mp4' });
      files.push({ rungId: file.rungId, name, key, size: info.size });
    }
    const output: ChunkOutput = { files, startSec: chunk.startSec, durationSec: chunk.durationSec };
    await record({ status: 'succeeded', finishedAt: new Date().toISOString(), output });
    logger.info({ files: files.length }, 'chunk encoded');
    await reportChunkProgress(deps, runId, total).catch((err: unknown) => {
      logger.warn({ err }, 'could not record the run progress');
    });
  } catch (err) {
    const message = timeout.aborted
      ? `chunk ${chunk.index} did not finish within ${Math.round(deps.stepTimeoutMs / 1000)} s`
      : errorMessage(err);
    await record({ status: 'failed', finishedAt: new Date().toISOString(), error: message });
    if (attempt.signal.aborted) throw err; // shutdown or lost lease: another worker carries on
    if (isOutage(err)) throw err; // the database or object store is away: the worker waits for it
    if (isPermanentFailure(err) || attempt.attempt >= attempt.maxAttempts) {
      logger.error({ err }, 'chunk failed for good');
      await catalog.failRun(
        runId,
        `Encoding chunk ${chunk.index + 1} of ${total} (from ${chunk.startSec} s) failed: ${message}`,
        new Date().toISOString(),
      );
      return;
    }
    logger.warn({ err, attempt: attempt.attempt }, 'chunk failed; it will be retried');
    throw err;
  } finally {
    await rm(dir, { recursive: true, force: true }).catch(() => {});
  }
}

/** The run's progress while its chunks are encoded: the encode step's share, by chunks done. */
async function reportChunkProgress(deps: ChunkJobDeps, runId: string, total: number): Promise<void> {
  const done = (await deps.catalog.listSteps(runId)).filter(
    (s) => s.status === 'succeeded' && chunkIndexOfStep(s.name) !== null,
  ).length;
  const index = videoPipeline.steps.findIndex((s) => s.name === 'encode');
  const span = stepSpan(videoPipeline, index);
  // The chunks are 80 % of the encode step's share (encode.ts); join, packaging and storing the rest.
  await deps.catalog.setRunProgress(runId, span.start + ((span.end - span.start) * 0.8 * done) / total);
}
