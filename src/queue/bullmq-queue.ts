import { createHash } from 'node:crypto';
import {
  createPostgresBackend,
  type Job,
  type JobState,
  type JobsOptions,
  type JobType,
  Queue,
  quoteSchemaName,
  runMigrations,
  WaitingError,
  Worker,
  type WorkerOptions,
  withBackend,
} from 'bullmq';
import pg from 'pg';
import { newId } from '../domain/ids.js';
import { AppError, errorMessage } from '../errors.js';
import { type BackoffPolicy, backoffDelay, DEFAULT_BACKOFF } from './backoff.js';
import {
  type EnqueueOptions,
  JOB_STATUSES,
  type JobContext,
  type JobHandler,
  type JobQueue,
  type JobRecord,
  type JobStatus,
  type StopOptions,
  type WorkOptions,
} from './job-queue.js';
import type { QueueLogger } from './sqlite-queue.js';

export type BullmqBackend =
  /** Same database as the catalog, its own schema (BullMQ's tables, types and functions). */
  | { kind: 'postgres'; url: string; schema: string }
  /** `prefix` namespaces every key, so several deployments (or test runs) can share one Redis. */
  | { kind: 'redis'; url: string; prefix: string };

export interface BullmqJobQueueOptions {
  backend: BullmqBackend;
  /** How long a claimed job belongs to its worker without a lock renewal. @default 30000 */
  leaseMs?: number | undefined;
  /** Attempts before a job is dead-lettered, unless the job says otherwise. @default 5 */
  maxAttempts?: number | undefined;
  backoff?: BackoffPolicy | undefined;
  logger?: QueueLogger | undefined;
  /**
   * How long a call (enqueue, getJob, counts, listDead) waits for the backend before it fails with
   * an `UNAVAILABLE` AppError (HTTP 503). node-postgres waits for a connection forever and ioredis
   * queues commands while it reconnects, so the bound is ours. @default 5000
   */
  operationTimeoutMs?: number | undefined;
  /**
   * How often a job may lose its worker (crash, SIGKILL, an outage longer than the lease) and be
   * handed out again before it is dead-lettered. Such losses do not spend `maxAttempts`. @default 10
   */
  maxStalls?: number | undefined;
  /**
   * Kinds that `counts()` and `listDead()` report even before this process enqueued or worked them
   * (BullMQ has one queue per kind and no list of them): an API node's metrics then show the chunk
   * jobs that only workers enqueue.
   */
  kinds?: readonly string[] | undefined;
}

/** What a BullMQ job carries: the port's payload plus the adapter's bookkeeping. */
interface StoredData {
  payload: unknown;
  /** Unique per `enqueue` call: tells whether a keyed `add` created the job or found it. */
  nonce: string;
  /** When the retry after a failed attempt is due (BullMQ keeps no such field). */
  retryAt?: number;
}

type BullJob = Job<StoredData, void, string>;
type Processor = (job: BullJob, token?: string) => Promise<void>;

/** The parts of a BullMQ `Queue` used here; the Redis and PostgreSQL variants both satisfy it. */
interface BullQueue {
  add(name: string, data: StoredData, opts?: JobsOptions): Promise<BullJob>;
  getJob(jobId: string): Promise<BullJob | undefined>;
  getJobState(jobId: string): Promise<JobState | 'unknown'>;
  getJobCounts(...types: JobType[]): Promise<{ [index: string]: number }>;
  getJobs(types: JobType[], start?: number, end?: number, asc?: boolean): Promise<BullJob[]>;
  waitUntilReady(): Promise<void>;
  close(): Promise<void>;
  disconnect(): Promise<void>;
  on(event: 'error', listener: (err: Error) => void): unknown;
}

/** The parts of a BullMQ `Worker` used here. */
interface BullWorker {
  waitUntilReady(): Promise<void>;
  close(force?: boolean): Promise<void>;
  disconnect(): Promise<void>;
  on(event: 'error', listener: (err: Error) => void): unknown;
  on(event: 'lockRenewalFailed', listener: (jobIds: string[]) => void): unknown;
}

type WorkerSettings = Pick<
  WorkerOptions,
  'concurrency' | 'lockDuration' | 'lockRenewTime' | 'stalledInterval' | 'maxStalledCount' | 'runRetryDelay'
> & { settings: NonNullable<WorkerOptions['settings']> };

type Timer = ReturnType<typeof setTimeout>;

/** A job this instance is running. */
interface Flight {
  readonly job: BullJob;
  readonly token: string | undefined;
  readonly controller: AbortController;
  /** The handler has settled (or the job was released): no more progress writes. */
  finished: boolean;
  /** `stop()` gave the job back (or is doing so): BullMQ must not record an outcome. */
  released: boolean;
  /** The lock renewal failed: another worker may own the job; the outcome is discarded. */
  leaseLost: boolean;
  /** Resolves when `stop()` released the job, so the processor returns without the handler. */
  readonly releasedSignal: Promise<void>;
  readonly release: () => void;
  /** Resolves once the processor has returned. */
  readonly done: Promise<void>;
  readonly markDone: () => void;
  progressTimer: Timer | undefined;
  pendingProgress: number | undefined;
  lastProgressWrite: number;
  /** Progress writes run one after another, so an older value never lands after a newer one. */
  progressChain: Promise<void>;
}

interface WorkerSlot {
  readonly kind: string;
  readonly handler: JobHandler<unknown>;
  readonly concurrency: number;
  worker: BullWorker | undefined;
  /** Running jobs by BullMQ job id (BullMQ never gives one worker the same job twice at once). */
  readonly flights: Map<string, Flight>;
  restartTimer: Timer | undefined;
  restartDelayMs: number;
}

const DEFAULT_GRACE_MS = 30_000;
/** `progress()` writes at most this often per job; 100 is written at once. */
const PROGRESS_INTERVAL_MS = 500;
/** node-postgres connect timeout: a black-holed server fails within the default operation timeout. */
const PG_CONNECT_TIMEOUT_MS = 3_000;
/** Connections per BullMQ object's own pool (see `postgresConnection`). */
const PG_QUEUE_POOL_MAX = 2;
/**
 * BullMQ's wait after a connection error (ECONNREFUSED) before a worker fetches again. The 15 s
 * default means a worker idles up to 15 s after the database is back; 2 s costs one failing
 * query per worker per 2 s during an outage.
 */
const RUN_RETRY_DELAY_MS = 2_000;
/** At most one log line per BullMQ object (and per source) in this window; the rest are counted. */
const LOG_WINDOW_MS = 10_000;
/** `close()` waits this long for a BullMQ object to close before it drops its connections. */
const CLOSE_TIMEOUT_MS = 5_000;
/** The custom backoff strategy's name in a job's options; resolved by every worker's settings. */
const BACKOFF_TYPE = 'assetpipe';

/** The state names counted by `counts()`, and what the port calls them. */
const COUNTED: ReadonlyArray<[JobType, JobStatus]> = [
  ['waiting', 'waiting'],
  ['prioritized', 'waiting'],
  ['waiting-children', 'waiting'],
  ['delayed', 'delayed'],
  ['active', 'active'],
  ['completed', 'completed'],
  ['failed', 'dead'],
];

const consoleLogger: QueueLogger = {
  warn: (obj, msg) => console.warn(msg, obj),
  error: (obj, msg) => console.error(msg, obj),
};

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${name} must be a positive number`);
  return value;
}

function positiveInt(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be an integer >= 1`);
  return value;
}

/** BullMQ refuses ':' in queue names (it separates the parts of its Redis keys). */
function checkKind(kind: string): void {
  if (typeof kind !== 'string' || kind.length === 0) throw new TypeError('kind must be a non-empty string');
  if (kind.includes(':'))
    throw new TypeError(`kind must not contain ":" (BullMQ queue names), got "${kind}"`);
}

/**
 * The port's job id is `<kind>/<BullMQ job id>`, so `getJob` knows which queue to ask. BullMQ job
 * ids are ours: `job_<ulid>` (newId) or `key_<base64url sha-256>` for a deduplication key; neither
 * holds '/' (so a kind may), ':' (refused by BullMQ in custom ids) or is an integer (also refused).
 */
function portId(kind: string, bullId: string): string {
  return `${kind}/${bullId}`;
}

function parsePortId(id: string): { kind: string; bullId: string } | undefined {
  if (typeof id !== 'string') return undefined;
  const slash = id.lastIndexOf('/');
  if (slash <= 0 || slash === id.length - 1) return undefined;
  const kind = id.slice(0, slash);
  if (kind.includes(':')) return undefined;
  return { kind, bullId: id.slice(slash + 1) };
}

/** The job id that makes a deduplication key unique per kind: BullMQ keeps one job per id. */
function keyedJobId(key: string): string {
  return `key_${createHash('sha256').update(key).digest('base64url')}`;
}

function statusOf(state: JobState | 'unknown'): JobStatus | undefined {
  switch (state) {
    case 'waiting':
    case 'prioritized':
    case 'waiting-children':
      return 'waiting';
    case 'delayed':
      return 'delayed';
    case 'active':
      return 'active';
    case 'completed':
      return 'completed';
    case 'failed':
      return 'dead';
    default:
      return undefined;
  }
}

function emptyCounts(): Record<JobStatus, number> {
  return Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as Record<JobStatus, number>;
}

/**
 * The failure BullMQ sees for a throwing handler. Always a fresh `Error`: BullMQ reads `message` of
 * whatever is thrown (a thrown string or `undefined` would break its bookkeeping) and gives names
 * such as `UnrecoverableError` or `WaitingError` a meaning the port does not have.
 */
class AttemptFailure extends Error {
  /** When the retry is due, as stored in the job; the backoff strategy waits until then. */
  retryAt: number | undefined;

  constructor(thrown: unknown) {
    super(errorMessage(thrown), { cause: thrown });
    this.name = 'AttemptFailure';
    if (thrown instanceof Error && thrown.stack) this.stack = thrown.stack;
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

function sleep(ms: number): { promise: Promise<void>; cancel: () => void } {
  let timer: Timer | undefined;
  let resolve = () => {};
  const promise = new Promise<void>((r) => {
    resolve = r;
    timer = setTimeout(r, ms);
  });
  return {
    promise,
    cancel: () => {
      clearTimeout(timer);
      resolve();
    },
  };
}

/**
 * Logs errors of one source at most once per window, with the number left out since the last
 * line: a worker whose database is restarting fails every fetch, and BullMQ emits each one.
 */
class ThrottledLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly logger: QueueLogger,
    private readonly windowMs: number,
  ) {}

  report(level: 'warn' | 'error', source: string, obj: object, msg: string): void {
    const now = Date.now();
    const entry = this.last.get(source);
    if (entry && now - entry.at < this.windowMs) {
      entry.suppressed++;
      return;
    }
    const suppressed = entry?.suppressed ?? 0;
    this.last.set(source, { at: now, suppressed: 0 });
    this.logger[level](suppressed > 0 ? { ...obj, source, suppressed } : { ...obj, source }, msg);
  }
}

/**
 * `JobQueue` on BullMQ 6, on PostgreSQL (BullMQ's PostgreSQL backend, in its own schema of the
 * catalog's database) or on Redis. One BullMQ queue per job kind, so a kind's concurrency is its
 * Worker's `concurrency` and kinds never wait for each other.
 *
 * Mapping of the contract:
 * - attempt = BullMQ's `attemptsMade` (finished attempts) + `stalledCounter` (attempts lost with
 *   their worker) + 1 while active. A job released by `stop()` moves back to wait without touching
 *   either counter, so it spends no attempt; its `attemptsStarted` does grow and is not used.
 * - retries: `attempts` = maxAttempts and a custom backoff strategy that waits exactly
 *   `backoffDelay(attempt)`; the due time is stored in the job (`retryAt`) for `runAt`.
 * - lease: `lockDuration` = leaseMs, renewed every third of it; stalled checks every half, so a job
 *   whose worker died is handed out again within about 1.5 × leaseMs (45 s with the default).
 * - retention: completed and dead jobs are kept (removeOnComplete/removeOnFail off), because the
 *   job row is what makes an enqueue with a deduplication key return the existing job, in any
 *   state, as the SQLite adapter does. Pruning old jobs would also end their deduplication.
 */
export class BullmqJobQueue implements JobQueue {
  private readonly backend: BullmqBackend;
  private readonly leaseMs: number;
  private readonly maxAttempts: number;
  private readonly maxStalls: number;
  private readonly operationTimeoutMs: number;
  private readonly backoff: BackoffPolicy;
  private readonly logger: QueueLogger;
  private readonly log: ThrottledLog;
  /** Kinds enqueued or worked by this instance: what `counts()` and `listDead()` report on. */
  private readonly kinds = new Set<string>();
  private readonly queues = new Map<string, BullQueue>();
  private readonly slots = new Map<string, WorkerSlot>();
  /** Resolves once the backend can be used (PostgreSQL: schema migrated); rejects only on close. */
  private readonly ready: Promise<void>;
  private prepareSleep: { cancel: () => void } | undefined;
  private stopping = false;
  private closed = false;
  private stopPromise: Promise<void> | undefined;
  private closePromise: Promise<void> | undefined;

  constructor(options: BullmqJobQueueOptions) {
    const { backend } = options;
    if (backend.kind === 'postgres') {
      quoteSchemaName(backend.schema); // throws on a name BullMQ cannot use, before any connection
    } else if (backend.kind === 'redis') {
      if (typeof backend.prefix !== 'string' || backend.prefix.length === 0)
        throw new TypeError('backend.prefix must be a non-empty string');
    } else {
      throw new TypeError(`backend.kind must be "postgres" or "redis"`);
    }
    this.backend = backend;
    // BullMQ stores lock times as integer milliseconds.
    this.leaseMs = Math.max(1, Math.round(positive('leaseMs', options.leaseMs ?? 30_000)));
    this.maxAttempts = positiveInt('maxAttempts', options.maxAttempts ?? 5);
    this.maxStalls = positiveInt('maxStalls', options.maxStalls ?? 10);
    this.operationTimeoutMs = positive('operationTimeoutMs', options.operationTimeoutMs ?? 5_000);
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
    for (const kind of options.kinds ?? []) {
      checkKind(kind);
      this.kinds.add(kind);
    }
    this.logger = options.logger ?? consoleLogger;
    this.log = new ThrottledLog(this.logger, LOG_WINDOW_MS);
    this.ready = this.prepare();
    this.ready.catch(() => {}); // only rejects once closed; callers see their own rejection
  }

  async enqueue<P>(
    kind: string,
    payload: P,
    options: EnqueueOptions = {},
  ): Promise<{ id: string; created: boolean }> {
    this.assertOpen();
    checkKind(kind);
    const delayMs = options.delayMs ?? 0;
    if (!Number.isFinite(delayMs) || delayMs < 0) throw new RangeError('delayMs must be a number >= 0');
    const attempts = positiveInt('maxAttempts', options.maxAttempts ?? this.maxAttempts);
    const { key } = options;
    if (key !== undefined && (typeof key !== 'string' || key.length === 0))
      throw new TypeError('key must be a non-empty string');
    this.kinds.add(kind);
    const nonce = newId('job');
    const bullId = key === undefined ? nonce : keyedJobId(key);
    const data: StoredData = { payload: payload === undefined ? null : payload, nonce };
    return this.operation('enqueue', async () => {
      const queue = await this.queueFor(kind);
      await queue.add(kind, data, {
        jobId: bullId,
        attempts,
        delay: Math.round(delayMs),
        backoff: { type: BACKOFF_TYPE },
        removeOnComplete: false,
        removeOnFail: false,
      });
      if (key === undefined) return { id: portId(kind, bullId), created: true };
      // BullMQ ignores an add whose job id exists and reports no difference: our nonce tells.
      const stored = await queue.getJob(bullId);
      return { id: portId(kind, bullId), created: stored?.data.nonce === nonce };
    });
  }

  work<P>(kind: string, handler: JobHandler<P>, options: WorkOptions = {}): void {
    this.assertOpen();
    if (this.stopping) throw new Error('job queue: stopped, cannot start a worker');
    checkKind(kind);
    if (this.slots.has(kind)) throw new Error(`job queue: kind "${kind}" already has a worker in this queue`);
    const slot: WorkerSlot = {
      kind,
      handler: handler as JobHandler<unknown>,
      concurrency: positiveInt('concurrency', options.concurrency ?? 1),
      worker: undefined,
      flights: new Map(),
      restartTimer: undefined,
      restartDelayMs: 1_000,
    };
    this.slots.set(kind, slot);
    this.kinds.add(kind);
    this.ready.then(
      () => this.startWorker(slot),
      () => {},
    );
  }

  async getJob<P = unknown>(id: string): Promise<JobRecord<P> | undefined> {
    this.assertOpen();
    const parsed = parsePortId(id);
    if (!parsed) return undefined;
    return this.operation('getJob', async () => {
      const queue = await this.queueFor(parsed.kind);
      const job = await queue.getJob(parsed.bullId);
      if (!job) return undefined;
      const status = statusOf(await queue.getJobState(parsed.bullId));
      return status === undefined ? undefined : this.toRecord<P>(parsed.kind, job, status);
    });
  }

  async listDead(kind?: string, limit = 100): Promise<JobRecord[]> {
    this.assertOpen();
    positiveInt('limit', limit);
    if (kind !== undefined) checkKind(kind);
    const kinds = kind === undefined ? [...this.kinds] : [kind];
    return this.operation('listDead', async () => {
      const perKind = await Promise.all(
        kinds.map(async (k) => {
          const jobs = await (await this.queueFor(k)).getJobs(['failed'], 0, limit - 1, false);
          return jobs.map((job) => this.toRecord(k, job, 'dead'));
        }),
      );
      return perKind
        .flat()
        .sort(
          (a, b) => (b.finishedAt?.getTime() ?? 0) - (a.finishedAt?.getTime() ?? 0) || (a.id < b.id ? 1 : -1),
        )
        .slice(0, limit);
    });
  }

  async counts(): Promise<Record<string, Record<JobStatus, number>>> {
    this.assertOpen();
    const kinds = [...this.kinds].sort();
    return this.operation('counts', async () => {
      const out: Record<string, Record<JobStatus, number>> = {};
      const all = await Promise.all(
        kinds.map(async (kind) => (await this.queueFor(kind)).getJobCounts(...COUNTED.map(([type]) => type))),
      );
      kinds.forEach((kind, i) => {
        const perKind = emptyCounts();
        for (const [type, status] of COUNTED) perKind[status] += all[i]?.[type] ?? 0;
        out[kind] = perKind;
      });
      return out;
    });
  }

  /** Idempotent; a second call returns the first call's promise (and ignores its options). */
  stop(options: StopOptions = {}): Promise<void> {
    this.stopPromise ??= this.shutdown(options.graceMs ?? DEFAULT_GRACE_MS);
    return this.stopPromise;
  }

  close(): Promise<void> {
    this.closePromise ??= (async () => {
      await this.stop();
      this.closed = true;
      this.prepareSleep?.cancel();
      // A migration still running would otherwise finish after close() (and, in tests, recreate a
      // schema that was just dropped); it ends within the connect timeout when the server is away.
      await this.ready.catch(() => {});
      const workers = [...this.slots.values()].flatMap((slot) => (slot.worker ? [slot.worker] : []));
      await Promise.all([
        ...workers.map((worker) => this.closeBounded('worker', worker)),
        ...[...this.queues.values()].map((queue) => this.closeBounded('queue', queue)),
      ]);
      this.queues.clear();
    })();
    return this.closePromise;
  }

  /**
   * Resolves once the backend is usable and every worker started so far is connected (not part of
   * the port: for start-up checks and tests that need a worker to be listening).
   */
  async waitUntilReady(): Promise<void> {
    await this.ready;
    const workers = [...this.slots.values()].flatMap((slot) => (slot.worker ? [slot.worker] : []));
    await Promise.all(workers.map((worker) => worker.waitUntilReady()));
  }

  // --- internals ---------------------------------------------------------------------------

  /** Calls stay allowed while `stop()` waits for in-flight jobs: their handlers may enqueue follow-ups. */
  private assertOpen(): void {
    if (this.closed) throw new Error('job queue: closed');
  }

  /**
   * PostgreSQL: runs BullMQ's migrations once per instance on a connection of its own (they take an
   * advisory lock, so concurrent starters migrate once), retrying until the database answers.
   * BullMQ objects are only created afterwards: their own start-up check is memoised, so one made
   * while the database is down would stay broken for good.
   */
  private async prepare(): Promise<void> {
    const backend = this.backend;
    if (backend.kind !== 'postgres') return;
    let delayMs = 500;
    for (;;) {
      if (this.closed) throw new Error('job queue: closed');
      const client = new pg.Client({
        connectionString: backend.url,
        connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS,
      });
      client.on('error', () => {}); // a dropped connection also rejects the pending query
      try {
        await client.connect();
        await runMigrations(client, backend.schema);
        return;
      } catch (err) {
        this.log.report(
          'warn',
          'prepare',
          { err },
          'job queue: cannot prepare the PostgreSQL schema; retrying',
        );
      } finally {
        await client.end().catch(() => {});
      }
      const pause = sleep(delayMs);
      this.prepareSleep = pause;
      await pause.promise;
      delayMs = Math.min(delayMs * 2, 10_000);
    }
  }

  /** Runs a caller's request against the backend, failing with a 503 error once it takes too long. */
  private async operation<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const run = (async () => {
      await this.ready;
      return fn();
    })();
    run.catch(() => {}); // its rejection is ours to report only while we wait for it
    let timer: Timer | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new AppError('UNAVAILABLE', 'The job queue cannot be reached right now; retry shortly.', {
              cause: new Error(`job queue: ${name} did not finish within ${this.operationTimeoutMs} ms`),
            }),
          ),
        this.operationTimeoutMs,
      );
    });
    try {
      return await Promise.race([run, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The kind's BullMQ queue, made on first use (after `ready`). */
  private async queueFor(kind: string): Promise<BullQueue> {
    await this.ready;
    this.assertOpen();
    const existing = this.queues.get(kind);
    if (existing) return existing;
    const queue = this.createQueue(kind);
    this.queues.set(kind, queue);
    queue.on('error', (err) =>
      this.log.report('error', `queue ${kind}`, { err, kind }, 'job queue: backend error'),
    );
    // A queue whose start-up failed stays failed (BullMQ memoises it): drop it, the next call makes
    // a fresh one.
    queue.waitUntilReady().catch((err: unknown) => {
      if (this.queues.get(kind) === queue) this.queues.delete(kind);
      this.log.report(
        'warn',
        `queue ${kind}`,
        { err, kind },
        'job queue: queue could not start; replacing it',
      );
      void queue.close().catch(() => {});
    });
    return queue;
  }

  private createQueue(kind: string): BullQueue {
    const backend = this.backend;
    if (backend.kind === 'postgres') {
      const Pg = withBackend(createPostgresBackend);
      return new Pg.Queue<StoredData, void>(kind, { connection: this.postgresConnection(PG_QUEUE_POOL_MAX) });
    }
    return new Queue<StoredData, void>(kind, {
      // A producer must not wait out a long outage: one reconnection attempt, then the command fails.
      connection: { url: backend.url, maxRetriesPerRequest: 1 },
      prefix: backend.prefix,
    });
  }

  /**
   * Each BullMQ object gets a small pool of its own. Sharing one `pg.Pool` is what the API offers
   * for a single pool per process, but BullMQ 6.7 then checks the compatibility of the default
   * `bullmq` schema instead of ours and refuses to start; idle connections close after 10 s, so
   * the steady state is a LISTEN connection per worked kind.
   */
  private postgresConnection(max: number) {
    const backend = this.backend as Extract<BullmqBackend, { kind: 'postgres' }>;
    return {
      connectionString: backend.url,
      schema: backend.schema,
      max,
      connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS,
      keepAlive: true,
    };
  }

  private startWorker(slot: WorkerSlot): void {
    slot.restartTimer = undefined;
    if (this.stopping || this.closed) return;
    const worker = this.createWorker(slot.kind, (job, token) => this.process(slot, job, token), {
      concurrency: slot.concurrency,
      lockDuration: this.leaseMs,
      // BullMQ renews at half the lease by default; a third leaves room for a busy event loop.
      lockRenewTime: Math.max(1, Math.floor(this.leaseMs / 3)),
      stalledInterval: Math.max(1, Math.floor(this.leaseMs / 2)),
      // BullMQ's default of 1 fails a job the second time its worker dies; crashes, deploys and
      // database outages are not the job's fault, so they get their own, larger budget.
      maxStalledCount: this.maxStalls,
      runRetryDelay: RUN_RETRY_DELAY_MS,
      settings: { backoffStrategy: (attemptsMade, _type, err) => this.retryDelay(attemptsMade, err) },
    });
    slot.worker = worker;
    worker.on('error', (err) =>
      this.log.report('error', `worker ${slot.kind}`, { err, kind: slot.kind }, 'job queue: worker error'),
    );
    worker.on('lockRenewalFailed', (jobIds) => {
      for (const jobId of jobIds) this.loseLease(slot, jobId);
    });
    worker.waitUntilReady().then(
      () => {
        slot.restartDelayMs = 1_000;
      },
      (err: unknown) => {
        if (slot.worker !== worker || this.stopping) return;
        // Its start-up failed for good (BullMQ memoises it): close it and start a fresh worker.
        this.log.report(
          'warn',
          `worker ${slot.kind}`,
          { err, kind: slot.kind },
          'job queue: worker could not start; replacing it',
        );
        slot.worker = undefined;
        void worker.close(true).catch(() => {});
        slot.restartTimer = setTimeout(() => this.startWorker(slot), slot.restartDelayMs);
        slot.restartDelayMs = Math.min(slot.restartDelayMs * 2, 30_000);
      },
    );
  }

  private createWorker(kind: string, processor: Processor, settings: WorkerSettings): BullWorker {
    const backend = this.backend;
    if (backend.kind === 'postgres') {
      const Pg = withBackend(createPostgresBackend);
      return new Pg.Worker<StoredData, void>(kind, processor, {
        ...settings,
        // Fetch, finish, lock renewal, stalled check and progress may all run at once; the rest wait
        // for a connection (PostgreSQL's 100 connections are shared by every process of a fleet).
        connection: this.postgresConnection((settings.concurrency ?? 1) + 2),
      });
    }
    return new Worker<StoredData, void>(kind, processor, {
      ...settings,
      // BullMQ requires workers to retry commands for as long as Redis is away.
      connection: { url: backend.url, maxRetriesPerRequest: null },
      prefix: backend.prefix,
    });
  }

  /** The custom backoff strategy: until the due time the processor stored with the failure. */
  private retryDelay(attemptsMade: number, err: Error | undefined): number {
    if (err instanceof AttemptFailure && err.retryAt !== undefined)
      return Math.max(1, err.retryAt - Date.now());
    return Math.max(1, backoffDelay(attemptsMade, this.backoff));
  }

  /** BullMQ's processor: runs the handler and turns its outcome into what BullMQ records. */
  private async process(slot: WorkerSlot, job: BullJob, token: string | undefined): Promise<void> {
    // With PostgreSQL, a worker that is closing may still claim one job (its interrupted wait for
    // jobs returns "check now"): give it back untouched.
    if (this.stopping) {
      await this.release(job, token);
      throw new WaitingError('job queue: stopping');
    }
    const released = deferred();
    const done = deferred();
    const flight: Flight = {
      job,
      token,
      controller: new AbortController(),
      finished: false,
      released: false,
      leaseLost: false,
      releasedSignal: released.promise,
      release: released.resolve,
      done: done.promise,
      markDone: done.resolve,
      progressTimer: undefined,
      pendingProgress: undefined,
      lastProgressWrite: Number.NEGATIVE_INFINITY,
      progressChain: Promise.resolve(),
    };
    const jobId = job.id ?? '';
    slot.flights.set(jobId, flight);
    try {
      const record = this.toRecord(slot.kind, job, 'active');
      // The handler gets its own copy: `job.data` is written back as a whole when a retry is due.
      record.payload = structuredClone(record.payload);
      const ctx: JobContext = {
        attempt: record.attempt,
        signal: flight.controller.signal,
        progress: async (percent) => this.reportProgress(flight, percent),
      };
      let failure: { err: unknown } | undefined;
      const handled = (async () => {
        try {
          await slot.handler(record, ctx);
        } catch (err) {
          failure = { err };
        }
      })();
      await Promise.race([handled, flight.releasedSignal]);
      // Released by stop() or lease lost: BullMQ must not write an outcome. A WaitingError makes
      // it leave the job alone (it means "the processor moved the job itself").
      if (flight.released) throw new WaitingError('job queue: released at shutdown');
      flight.finished = true;
      if (flight.leaseLost) throw new WaitingError('job queue: lease lost');
      await this.flushProgress(flight, true);
      if (failure) throw await this.failAttempt(job, record.attempt, failure.err);
    } finally {
      flight.finished = true;
      clearTimeout(flight.progressTimer);
      slot.flights.delete(jobId);
      done.resolve();
    }
  }

  /** Builds the failure BullMQ records; when a retry follows, stores its due time in the job. */
  private async failAttempt(job: BullJob, attempt: number, thrown: unknown): Promise<AttemptFailure> {
    const failure = new AttemptFailure(thrown);
    // BullMQ retries while attemptsMade + 1 < attempts (Job.shouldRetryJob).
    if (job.attemptsMade + 1 < (job.opts.attempts ?? 1)) {
      failure.retryAt = Date.now() + backoffDelay(attempt, this.backoff);
      try {
        await job.updateData({ ...job.data, retryAt: failure.retryAt });
      } catch (err) {
        this.log.report(
          'warn',
          `retry ${job.queueName}`,
          { err, jobId: job.id },
          'job queue: could not store retry time',
        );
      }
    }
    return failure;
  }

  /** Gives an active job back to the waiting list without spending an attempt. */
  private async release(job: BullJob, token: string | undefined): Promise<void> {
    // Without a token moveToWait would skip the lock check; BullMQ always passes one.
    if (token === undefined) return;
    try {
      await job.moveToWait(token);
    } catch (err) {
      this.logger.error(
        { err, jobId: job.id, kind: job.queueName },
        'job queue: could not release job at shutdown',
      );
    }
  }

  private loseLease(slot: WorkerSlot, jobId: string): void {
    const flight = slot.flights.get(jobId);
    if (!flight || flight.finished || flight.released || flight.leaseLost) return;
    flight.leaseLost = true;
    clearTimeout(flight.progressTimer);
    flight.pendingProgress = undefined;
    this.logger.warn({ jobId, kind: slot.kind }, 'job queue: lease lost; aborting the handler');
    flight.controller.abort(new Error('job queue: lease lost'));
  }

  private async shutdown(graceMs: number): Promise<void> {
    this.stopping = true;
    const slots = [...this.slots.values()];
    for (const slot of slots) {
      clearTimeout(slot.restartTimer);
      slot.restartTimer = undefined;
    }
    // close() stops fetching at once and resolves when the processors of in-flight jobs returned.
    const closing = slots.flatMap((slot) => (slot.worker ? [slot.worker.close()] : []));
    for (const promise of closing) promise.catch(() => {});
    const running = this.allFlights();
    if (running.length > 0) {
      const grace = sleep(Math.max(0, graceMs));
      await Promise.race([Promise.all(running.map((flight) => flight.done)), grace.promise]);
      grace.cancel();
    }
    await Promise.all(
      this.allFlights().map(async (flight) => {
        if (flight.finished || flight.released) return;
        flight.released = true;
        clearTimeout(flight.progressTimer);
        await this.release(flight.job, flight.token);
        flight.controller.abort(new Error('job queue: stopped, grace period over'));
        flight.release();
      }),
    );
    const closed = sleep(CLOSE_TIMEOUT_MS);
    await Promise.race([Promise.allSettled(closing), closed.promise]);
    closed.cancel();
  }

  private allFlights(): Flight[] {
    return [...this.slots.values()].flatMap((slot) => [...slot.flights.values()]);
  }

  private async closeBounded(what: string, target: { close(): Promise<void>; disconnect(): Promise<void> }) {
    const timeout = sleep(CLOSE_TIMEOUT_MS);
    const outcome = await Promise.race([
      target.close().then(
        () => 'closed' as const,
        () => 'closed' as const,
      ),
      timeout.promise.then(() => 'timeout' as const),
    ]);
    timeout.cancel();
    if (outcome === 'timeout') {
      this.logger.warn({ what }, 'job queue: close timed out; dropping the connections');
      await target.disconnect().catch(() => {});
    }
  }

  private reportProgress(flight: Flight, percent: number): void {
    if (flight.finished || flight.released || flight.leaseLost || !Number.isFinite(percent)) return;
    const value = Math.min(100, Math.max(0, percent));
    flight.pendingProgress = value;
    const elapsed = Date.now() - flight.lastProgressWrite;
    if (value >= 100 || elapsed >= PROGRESS_INTERVAL_MS) {
      void this.flushProgress(flight);
    } else {
      flight.progressTimer ??= setTimeout(
        () => void this.flushProgress(flight),
        PROGRESS_INTERVAL_MS - elapsed,
      );
    }
  }

  /** Writes the pending progress; `final` is the flush before the outcome, after the handler. */
  private flushProgress(flight: Flight, final = false): Promise<void> {
    clearTimeout(flight.progressTimer);
    flight.progressTimer = undefined;
    const progress = flight.pendingProgress;
    if (progress === undefined || flight.released || flight.leaseLost || (flight.finished && !final))
      return flight.progressChain;
    flight.pendingProgress = undefined;
    flight.lastProgressWrite = Date.now();
    flight.progressChain = flight.progressChain.then(async () => {
      try {
        await flight.job.updateProgress(progress);
      } catch (err) {
        this.log.report(
          'warn',
          `progress ${flight.job.queueName}`,
          { err, jobId: flight.job.id },
          'job queue: could not store progress',
        );
      }
    });
    return flight.progressChain;
  }

  private toRecord<P>(kind: string, job: BullJob, status: JobStatus): JobRecord<P> {
    const data = job.data;
    const finished = status === 'completed' || status === 'dead';
    return {
      id: portId(kind, job.id ?? ''),
      kind,
      payload: data.payload as P,
      status,
      attempt: job.attemptsMade + (job.stalledCounter ?? 0) + (status === 'active' ? 1 : 0),
      maxAttempts: job.opts.attempts ?? 1,
      lastError: typeof job.failedReason === 'string' ? job.failedReason : null,
      progress: typeof job.progress === 'number' ? job.progress : 0,
      createdAt: new Date(job.timestamp),
      runAt: new Date(data.retryAt ?? job.timestamp + (job.opts.delay ?? 0)),
      finishedAt: finished && job.finishedOn !== undefined ? new Date(job.finishedOn) : null,
    };
  }
}
