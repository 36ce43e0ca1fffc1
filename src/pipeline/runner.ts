import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline as pipeStreams } from 'node:stream/promises';
import type { Logger } from 'pino';
import type { Catalog } from '../catalog/catalog.js';
import type { AssetVersion, MediaType, Run } from '../domain/asset.js';
import { newId } from '../domain/ids.js';
import { errorMessage } from '../errors.js';
import { isOutage } from '../lib/outage.js';
import type { ImageLimits } from '../media/image.js';
import type { Metrics } from '../metrics.js';
import type { JobQueue } from '../queue/job-queue.js';
import type { BlobStore } from '../storage/blob-store.js';
import { stepOutputKey } from '../storage/keys.js';
import { chunkIndexOfStep, chunkJobKey, type JobPayloads } from './jobs.js';
import {
  type ChunkJobs,
  isPermanentFailure,
  type OutputFileOnDisk,
  type PipelineDefinition,
  type PipelineSettings,
  type StepContext,
  type StepOutput,
  stepSpan,
} from './step.js';

export interface RunnerOptions {
  catalog: Catalog;
  blobs: BlobStore;
  /** Where steps queue the jobs they wait for (chunks of a long video). */
  queue: Pick<JobQueue, 'enqueue' | 'getJob'>;
  logger: Logger;
  metrics: Metrics;
  pipelines: Record<MediaType, PipelineDefinition>;
  limits: ImageLimits;
  settings: PipelineSettings;
  stepTimeoutMs: number;
  /** This process's scratch folder; each run attempt works in a subfolder that it removes. */
  scratchRoot: string;
  now?: () => Date;
}

export interface RunAttempt {
  /** The queue's attempt number (1-based) and its limit: the last attempt records the failure. */
  attempt: number;
  maxAttempts: number;
  signal: AbortSignal;
  progress(percent: number): Promise<void>;
}

export type RunOutcome = 'published' | 'failed' | 'already-finished' | 'missing';

class StepTimeoutError extends Error {
  constructor(step: string, ms: number) {
    super(`step "${step}" did not finish within ${Math.round(ms / 1000)} s`);
    this.name = 'StepTimeoutError';
  }
}

/**
 * Executes pipeline runs: the durable workflow of one asset version.
 *
 * A run survives its worker: steps that already succeeded (recorded in the catalog with their
 * output) are not repeated when another attempt resumes it; steps left `running` by a dead worker
 * are marked `abandoned`. Outputs go to keys derived from (asset, version, step), so a repeated
 * step overwrites, never duplicates. The asset becomes `ready` only in `publishRun`, after every
 * recorded output has been checked in the blob store.
 */
export class PipelineRunner {
  private readonly now: () => Date;
  readonly scratchRoot: string;

  constructor(private readonly options: RunnerOptions) {
    this.now = options.now ?? (() => new Date());
    this.scratchRoot = options.scratchRoot;
  }

  async execute(runId: string, attempt: RunAttempt): Promise<RunOutcome> {
    const { catalog, logger: baseLogger } = this.options;
    const existing = await catalog.getRun(runId);
    if (!existing) {
      baseLogger.warn({ runId }, 'job for an unknown run; nothing to do');
      return 'missing';
    }
    if (existing.status === 'succeeded' || existing.status === 'failed') return 'already-finished';

    const logger = baseLogger.child({ runId, assetId: existing.assetId, version: existing.version });
    const version = await catalog.getVersion(existing.assetId, existing.version);
    if (!version) {
      await catalog.failRun(runId, 'The asset version to process no longer exists.', this.iso());
      return 'failed';
    }

    const abandoned = await catalog.abandonRunningSteps(
      runId,
      this.iso(),
      'the worker running this step stopped',
    );
    if (abandoned > 0) logger.warn({ abandoned }, 'resuming a run whose previous worker stopped mid-step');
    const run = await catalog.startRun(runId, this.iso());
    logger.info({ attempt: run.attempts, kind: run.kind }, 'run started');

    const scratchDir = join(this.options.scratchRoot, `${runId}-${newId('stp').slice(4)}`);
    await mkdir(scratchDir, { recursive: true });
    try {
      return await this.executeSteps(run, version, scratchDir, attempt, logger);
    } finally {
      await rm(scratchDir, { recursive: true, force: true }).catch(() => {});
    }
  }

  private async executeSteps(
    run: Run,
    version: AssetVersion,
    scratchDir: string,
    attempt: RunAttempt,
    logger: Logger,
  ): Promise<RunOutcome> {
    const { catalog, pipelines } = this.options;
    const pipeline = pipelines[run.kind];
    const asset = await catalog.getAsset(run.assetId);
    const project = asset ? await catalog.getProject(asset.projectId) : undefined;
    const limits = {
      ...this.options.limits,
      maxDurationSec: project?.limits.maxVideoDurationSec ?? null,
      projectId: asset?.projectId ?? 'default',
    };
    const settings = { ...this.options.settings, exposeGps: project?.exposeGps ?? false };
    const history = await catalog.listSteps(run.id);
    const outputs: Record<string, StepOutput> = {};
    for (const step of history) {
      if (step.status === 'succeeded') outputs[step.name] = step.output ?? {};
    }

    let sourcePath: Promise<string> | undefined;
    const fetchSource = () => {
      sourcePath ??= this.fetchOriginal(version, scratchDir);
      return sourcePath;
    };

    const steps = [...pipeline.steps.map((s) => s.name), 'publish'];
    const report = this.progressReporter(run.id, attempt);
    for (const [index, name] of steps.entries()) {
      if (outputs[name] !== undefined) continue; // finished by an earlier attempt
      // Shutdown or a lost lease: another worker owns the run now, so stop before the next step.
      attempt.signal.throwIfAborted();
      const stepAttempt = history.filter((s) => s.name === name).length + 1;
      const stepId = newId('stp');
      const startedAt = this.now();
      await catalog.startStep({
        id: stepId,
        runId: run.id,
        name,
        attempt: stepAttempt,
        startedAt: startedAt.toISOString(),
      });
      const stepLogger = logger.child({ step: name, stepAttempt });
      // The step's own signal also fires on its timeout, so work it started (ffmpeg) is stopped too.
      const timeout = new AbortController();
      const signal = AbortSignal.any([attempt.signal, timeout.signal]);

      const ctx: StepContext = {
        runId: run.id,
        assetId: run.assetId,
        version: run.version,
        mimeType: version.mimeType,
        logger: stepLogger,
        signal,
        limits,
        settings,
        sourcePath: fetchSource,
        scratchDir,
        outputs,
        writeOutput: (file) => this.writeOutput(run, name, file),
        writeOutputFile: (file) => this.writeOutputFile(run, name, file),
        blobs: this.options.blobs,
        chunks: this.chunkJobs(run),
        progress: (percent) => {
          const span = stepSpan(pipeline, index);
          return report(span.start + ((span.end - span.start) * Math.min(100, Math.max(0, percent))) / 100);
        },
      };

      try {
        const output =
          name === 'publish'
            ? await this.publish(run, pipeline, outputs)
            : await this.withTimeout(
                name,
                Math.max(this.options.stepTimeoutMs, pipeline.steps[index]!.timeoutMs?.(outputs) ?? 0),
                timeout,
                () => pipeline.steps[index]!.run(ctx),
              );
        const finishedAt = this.now();
        await catalog.finishStep(stepId, {
          status: 'succeeded',
          finishedAt: finishedAt.toISOString(),
          output,
        });
        this.options.metrics.observeStep(
          run.kind,
          name,
          'succeeded',
          finishedAt.getTime() - startedAt.getTime(),
        );
        stepLogger.info({ durationMs: finishedAt.getTime() - startedAt.getTime() }, 'step succeeded');
        outputs[name] = output;
        await report(stepSpan(pipeline, index).end);
      } catch (err) {
        const finishedAt = this.now();
        const message = errorMessage(err);
        await catalog.finishStep(stepId, {
          status: 'failed',
          finishedAt: finishedAt.toISOString(),
          error: message,
        });
        this.options.metrics.observeStep(
          run.kind,
          name,
          'failed',
          finishedAt.getTime() - startedAt.getTime(),
        );

        if (attempt.signal.aborted) {
          // Shutdown or a lost lease: the queue hands the job to a worker that carries on.
          stepLogger.warn({ err: message }, 'step interrupted');
          throw err;
        }
        if (isOutage(err)) {
          // The database or the object store is away: not the step's fault, and never the last word
          // on the asset. The worker waits for it and resumes the run without spending an attempt.
          stepLogger.warn({ err: message }, 'step interrupted by an outage');
          throw err;
        }
        if (isPermanentFailure(err)) {
          stepLogger.info({ code: err.code, reason: message }, 'step failed for good');
          await catalog.failRun(run.id, message, this.iso());
          return 'failed';
        }
        if (attempt.attempt >= attempt.maxAttempts) {
          stepLogger.error({ err }, 'step failed on the last attempt');
          await catalog.failRun(
            run.id,
            `Processing failed in step "${name}" after ${attempt.attempt} attempts: ${message}`,
            this.iso(),
          );
          return 'failed';
        }
        stepLogger.warn({ err, attempt: attempt.attempt }, 'step failed; the run will be retried');
        throw err;
      }
    }
    logger.info('run published');
    return 'published';
  }

  /**
   * Progress goes to the job (cheap) and to the run in the catalog, where the API shows it: written
   * when it moved by a whole per cent, at most once a second (ffmpeg reports several times a second).
   */
  private progressReporter(runId: string, attempt: RunAttempt): (percent: number) => Promise<void> {
    let written = -1;
    let writtenAt = 0;
    return async (raw) => {
      const percent = Math.floor(Math.max(0, Math.min(100, raw)));
      await attempt.progress(percent).catch(() => {});
      const now = Date.now();
      if (percent <= written || (now - writtenAt < 1000 && percent < 100)) return;
      written = percent;
      writtenAt = now;
      // Progress is informational: a failed write must not fail the step (or, from a callback that
      // does not await it, crash the process with an unhandled rejection).
      await this.options.catalog.setRunProgress(runId, percent).catch((err: unknown) => {
        this.options.logger.warn({ err, runId }, 'could not record the run progress');
      });
    };
  }

  private async fetchOriginal(version: AssetVersion, scratchDir: string): Promise<string> {
    const path = join(scratchDir, 'original');
    await pipeStreams(await this.options.blobs.get(version.originalKey), createWriteStream(path));
    return path;
  }

  private writeOutput(run: Run, step: string, file: Parameters<StepContext['writeOutput']>[0]) {
    return this.storeOutput(run, step, file, file.body);
  }

  private writeOutputFile(run: Run, step: string, file: OutputFileOnDisk) {
    return this.storeOutput(run, step, file, createReadStream(file.path));
  }

  /** Stores an output under its (asset, version, step, name) key and records it as a rendition. */
  private async storeOutput(
    run: Run,
    step: string,
    file: { name: string; contentType: string; width?: number | undefined; height?: number | undefined },
    body: Parameters<BlobStore['put']>[1],
  ) {
    const key = stepOutputKey(run.assetId, run.version, step, file.name);
    const info = await this.options.blobs.put(key, body, { contentType: file.contentType });
    await this.options.catalog.putRendition({
      assetId: run.assetId,
      version: run.version,
      name: file.name,
      key,
      contentType: file.contentType,
      size: info.size,
      width: file.width ?? null,
      height: file.height ?? null,
      createdAt: this.iso(),
    });
    return { key, size: info.size };
  }

  private chunkJobs(run: Run): ChunkJobs {
    const { catalog, queue } = this.options;
    return {
      async dispatch(total, chunks) {
        const jobs: { index: number; jobId: string }[] = [];
        for (const chunk of chunks) {
          const payload: JobPayloads['pipeline.chunk'] = { runId: run.id, total, chunk };
          const { id } = await queue.enqueue('pipeline.chunk', payload, {
            key: chunkJobKey(run.id, chunk.index),
          });
          jobs.push({ index: chunk.index, jobId: id });
        }
        return jobs;
      },
      async job(jobId) {
        const job = await queue.getJob(jobId);
        return job && { status: job.status, lastError: job.lastError };
      },
      async runStatus() {
        return (await catalog.getRun(run.id))?.status;
      },
      async finished() {
        const done = new Map<number, StepOutput>();
        for (const step of await catalog.listSteps(run.id)) {
          const index = chunkIndexOfStep(step.name);
          if (index !== null && step.status === 'succeeded') done.set(index, step.output ?? {});
        }
        return done;
      },
    };
  }

  /** Every recorded output must be in the blob store before the asset may become `ready`. */
  private async publish(
    run: Run,
    pipeline: PipelineDefinition,
    outputs: Record<string, StepOutput>,
  ): Promise<StepOutput> {
    const renditions = await this.options.catalog.listRenditions(run.assetId, run.version);
    for (const rendition of renditions) {
      const head = await this.options.blobs.head(rendition.key);
      if (!head || head.size !== rendition.size) {
        throw new Error(
          `output "${rendition.name}" is missing or incomplete in the blob store (${rendition.key})`,
        );
      }
    }
    await this.options.catalog.publishRun(run.id, pipeline.facts(outputs), this.iso());
    await this.deleteTemporaryBlobs(run, outputs);
    return { renditions: renditions.map((r) => r.name) };
  }

  /**
   * Intermediate blobs the steps listed (`temporaryKeys`): deleted once the run is published. One
   * that cannot be deleted stays until the asset is purged (it lives under the asset's prefix).
   */
  private async deleteTemporaryBlobs(run: Run, outputs: Record<string, StepOutput>): Promise<void> {
    for (const output of Object.values(outputs)) {
      const keys = Array.isArray(output.temporaryKeys) ? output.temporaryKeys : [];
      for (const key of keys) {
        if (typeof key !== 'string') continue;
        await this.options.blobs.delete(key).catch((err: unknown) => {
          this.options.logger.warn({ err, runId: run.id, key }, 'could not delete an intermediate blob');
        });
      }
    }
  }

  private async withTimeout<T>(
    step: string,
    ms: number,
    controller: AbortController,
    work: () => Promise<T>,
  ): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        work(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            const error = new StepTimeoutError(step, ms);
            controller.abort(error);
            reject(error);
          }, ms);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  private iso(): string {
    return this.now().toISOString();
  }
}
