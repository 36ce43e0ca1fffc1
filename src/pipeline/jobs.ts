/**
 * Every job kind the queue carries, with its payload. Handlers are registered from this map in
 * `workers.ts`, so a kind without a handler does not compile.
 */
export interface JobPayloads {
  /** Process one asset version: run every step of its pipeline, then publish or fail it. */
  'pipeline.run': { runId: string };
}

export type JobKind = keyof JobPayloads;

/** The dedupe key of a run's job: enqueueing the same run twice never makes a second job. */
export function runJobKey(runId: string): string {
  return `run:${runId}`;
}
