import type { Chunk } from '../domain/chunks.js';

/**
 * Every job kind the queue carries, with its payload. Handlers are registered from this map in
 * `workers.ts`, so a kind without a handler does not compile.
 */
export interface JobPayloads {
  /** Process one asset version: run every step of its pipeline, then publish or fail it. */
  'pipeline.run': { runId: string };
  /** Encode one chunk of a run's video (see `ChunkJobs`); the run's encode step waits for them all. */
  'pipeline.chunk': { runId: string; total: number; chunk: Chunk };
}

export type JobKind = keyof JobPayloads;

// A kind missing here is a compile error.
const EVERY_KIND: { [K in JobKind]: true } = { 'pipeline.run': true, 'pipeline.chunk': true };

/** Every kind, for queues that must know them up front (metrics of a process that never enqueues one). */
export const JOB_KINDS = Object.keys(EVERY_KIND) as readonly JobKind[];

/** The dedupe key of a run's job: enqueueing the same run twice never makes a second job. */
export function runJobKey(runId: string): string {
  return `run:${runId}`;
}

/** The dedupe key of a run's chunk job. */
export function chunkJobKey(runId: string, index: number): string {
  return `chunk:${runId}:${index}`;
}

/** The step record of a chunk job in the run's history (`encode.chunk-2`). */
export function chunkStepName(index: number): string {
  return `encode.chunk-${index}`;
}

/** The chunk index of a chunk step's name, or null for any other step. */
export function chunkIndexOfStep(name: string): number | null {
  const match = /^encode\.chunk-(\d+)$/.exec(name);
  return match ? Number(match[1]) : null;
}
