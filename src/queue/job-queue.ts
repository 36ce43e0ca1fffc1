/** `waiting`: ready to run; `delayed`: waits for its time (a delayed job or a retry's backoff). */
export type JobStatus = 'waiting' | 'delayed' | 'active' | 'completed' | 'dead';
export const JOB_STATUSES: readonly JobStatus[] = ['waiting', 'delayed', 'active', 'completed', 'dead'];

export interface JobRecord<P = unknown> {
  id: string;
  kind: string;
  payload: P;
  status: JobStatus;
  /** 1-based number of the attempt that is running or ran last; 0 before the first. */
  attempt: number;
  maxAttempts: number;
  /** The error of the last failed attempt. */
  lastError: string | null;
  /** Last reported progress, 0..100. */
  progress: number;
  createdAt: Date;
  /** When the job may run next. */
  runAt: Date;
  finishedAt: Date | null;
}

export interface EnqueueOptions {
  /**
   * Deduplication key. While a job with this key is known to the queue (in any state), enqueueing
   * again returns that job with `created: false` instead of adding a second one.
   */
  key?: string | undefined;
  /** Run no earlier than this many milliseconds from now. @default 0 */
  delayMs?: number | undefined;
  /** Attempts before the job is dead-lettered. @default the queue's `maxAttempts` */
  maxAttempts?: number | undefined;
}

export interface JobContext {
  /** 1-based attempt number. */
  attempt: number;
  /**
   * Aborted when the job must stop: the worker is shutting down past its grace period, or the
   * job's lease was lost (another worker may own it now). Handlers pass it to long operations.
   */
  signal: AbortSignal;
  /** Reports progress (0..100); cheap to call often, the adapter may coalesce writes. */
  progress(percent: number): Promise<void>;
}

/**
 * Resolve to complete the job. Throw to fail this attempt: the queue retries with exponential
 * backoff and jitter, and dead-letters the job after its last attempt. Outcomes that a retry cannot
 * change (bad input) are the handler's to record; it then resolves normally.
 */
export type JobHandler<P = unknown> = (job: JobRecord<P>, ctx: JobContext) => Promise<void>;

export interface WorkOptions {
  /** Jobs of this kind run at most this many at a time in this process. @default 1 */
  concurrency?: number | undefined;
}

export interface StopOptions {
  /**
   * How long in-flight jobs may take to finish. Past it their signals are aborted and the jobs are
   * released for another worker without spending an attempt. @default 30000
   */
  graceMs?: number | undefined;
}

/**
 * The job-queue port.
 *
 * Contract (proved for every adapter by `test/contract/job-queue.contract.ts`):
 * - at-least-once delivery; while a worker holds a job its lease is renewed by a heartbeat, and a
 *   job whose worker died is handed out again once the lease expires (within 60 s by default);
 * - no two workers (in any process) run the same job at the same time;
 * - a throwing handler is retried after `backoffDelay(attempt)` until `maxAttempts`, then the job
 *   is `dead` with the last error;
 * - delayed jobs do not run before their time;
 * - per-kind concurrency is honoured per process.
 */
export interface JobQueue {
  enqueue<P>(kind: string, payload: P, options?: EnqueueOptions): Promise<{ id: string; created: boolean }>;
  /** Starts consuming `kind` with `handler`. Call once per kind per process. */
  work<P>(kind: string, handler: JobHandler<P>, options?: WorkOptions): void;
  getJob<P = unknown>(id: string): Promise<JobRecord<P> | undefined>;
  /** Dead-lettered jobs, newest first. */
  listDead(kind?: string, limit?: number): Promise<JobRecord[]>;
  /** Number of jobs per kind and status, for metrics and admin stats. */
  counts(): Promise<Record<string, Record<JobStatus, number>>>;
  /** Stops taking new jobs and lets in-flight ones finish (see `StopOptions`). */
  stop(options?: StopOptions): Promise<void>;
  /** `stop()` and release connections. */
  close(): Promise<void>;
}
