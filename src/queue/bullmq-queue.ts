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
import { newId } from '../domain/ids.js';
import { AppError, errorMessage } from '../errors.js';
import { GuardedPgClient } from '../lib/guarded-pg-client.js';
import { asOutage } from '../lib/outage.js';
import { ThrottledLog } from '../lib/throttled-log.js';
import { deferred, settlesWithin, sleep, withTimeout } from '../lib/waiting.js';
import { type BackoffPolicy, backoffDelay, DEFAULT_BACKOFF } from './backoff.js';
import {
  COUNTED,
  checkKind,
  emptyCounts,
  keyedJobId,
  parsePortId,
  portId,
  statusOf,
} from './bullmq-mapping.js';
import type {
  EnqueueOptions,
  JobContext,
  JobHandler,
  JobQueue,
  JobRecord,
  JobStatus,
  StopOptions,
  WorkOptions,
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
   * handed out again before it is dead-lettered. Such losses do not count towards BullMQ's
   * dead-lettering after `maxAttempts` failed attempts, but they do raise the attempt number the
   * handler sees (see the class comment). @default 10
   */
  maxStalls?: number | undefined;
  /**
   * How long a completed job is kept (rounded up to whole seconds). Its deduplication key stays
   * taken for that long; pruning keeps the job tables, and so `counts()`, small. @default 7 days
   */
  keepCompletedMs?: number | undefined;
  /** How long a dead (dead-lettered) job is kept for `listDead()` and deduplication. @default 30 days */
  keepDeadMs?: number | undefined;
  /**
   * How long each shutdown step (closing a BullMQ object, then dropping its connections; releasing
   * jobs past the grace period) may take before `close()` gives up on it: a backend that stopped
   * answering must not keep `close()` from returning. @default 5000
   */
  closeTimeoutMs?: number | undefined;
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
  /**
   * What BullMQ's LockManager calls to renew the locks of the jobs this worker runs ("public
   * accessor method for LockManager" in BullMQ 6.7); wrapped in `watchRenewals`. Returns the ids
   * whose lock could not be renewed; rejects when the backend could not be asked.
   */
  extendJobLocks(jobIds: string[], tokens: string[], duration: number): Promise<string[]>;
}

type WorkerSettings = Pick<
  WorkerOptions,
  'concurrency' | 'lockDuration' | 'lockRenewTime' | 'stalledInterval' | 'maxStalledCount' | 'runRetryDelay'
> & { settings: NonNullable<WorkerOptions['settings']> };

type Timer = ReturnType<typeof setTimeout>;

/** A claim of a job by this instance: normally a running handler (see `process`). */
interface Flight {
  /** `flightKey(job id, token)`: its key in `WorkerSlot.flights`. */
  readonly key: string;
  readonly job: BullJob;
  readonly token: string | undefined;
  readonly controller: AbortController;
  /** The handler has settled (or the job was released): no more progress writes. */
  finished: boolean;
  /** `stop()` gave the job back (or is doing so): BullMQ must not record an outcome. */
  released: boolean;
  /**
   * The lock is (or may be) gone: a renewal was refused, no renewal succeeded for a whole lease,
   * or the job was claimed again. Another worker may own the job; the outcome is discarded.
   */
  leaseLost: boolean;
  /**
   * When the lock was last taken or renewed, as the time the request was sent: the backend wrote
   * it no earlier, so the lock lasts at least until `lockedAt + leaseMs` and, without a later
   * renewal, surely no longer.
   */
  lockedAt: number;
  /** Fires once `lockedAt + leaseMs` has passed without a renewal: the self-fence. */
  fenceTimer: Timer | undefined;
  /** Resolves when `stop()` released the job, so the processor returns without the handler. */
  readonly releasedSignal: Promise<void>;
  readonly release: () => void;
  /** Resolves when the lease is lost. */
  readonly leaseLostSignal: Promise<void>;
  readonly markLeaseLost: () => void;
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
  /**
   * Claims whose processor has not returned, by `flightKey(job id, token)`. One job id can appear
   * twice: a job whose lock expired while its handler still ran (an outage longer than the lease)
   * can be claimed again by this same worker; the new claim never runs the handler while the old
   * one is in flight (see `process`), and neither can remove the other's entry.
   */
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
/** Default of `closeTimeoutMs`. */
const CLOSE_TIMEOUT_MS = 5_000;
/**
 * TCP keepalive on the PostgreSQL sockets starts probing after this much idle time, so a peer that
 * vanished (host down, network partition) is noticed in seconds, not after the OS's 2 hours.
 */
const PG_KEEPALIVE_DELAY_MS = 10_000;
/**
 * node-postgres fails a query with "Query read timeout" when no answer came in this long (and
 * drops its connection): a query stuck against a black-holed server would otherwise hold a pool
 * connection, and `pool.end()` with it, forever. BullMQ's queries are short; its wait for jobs
 * is a LISTEN, not a query, so it is not affected.
 */
const PG_QUERY_TIMEOUT_MS = 30_000;
const DAY_MS = 24 * 60 * 60 * 1_000;
/** Default of `keepCompletedMs`: deduplication matters while a run is unfinished, a week is ample. */
const KEEP_COMPLETED_MS = 7 * DAY_MS;
/** Default of `keepDeadMs`: dead jobs stay listed for a month. */
const KEEP_DEAD_MS = 30 * DAY_MS;
/** The custom backoff strategy's name in a job's options; resolved by every worker's settings. */
const BACKOFF_TYPE = 'assetpipe';

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

/** A flight's key: BullMQ's lock token tells two claims of one job apart. */
function flightKey(jobId: string, token: string | undefined): string {
  return `${jobId} ${token ?? ''}`; // neither holds a space
}

/** node-postgres's error for a query that got no answer within `query_timeout`. */
function isQueryTimeout(err: unknown): boolean {
  return err instanceof Error && err.message === 'Query read timeout';
}

/**
 * `JobQueue` on BullMQ 6, on PostgreSQL (BullMQ's PostgreSQL backend, in its own schema of the
 * catalog's database) or on Redis. One BullMQ queue per job kind, so a kind's concurrency is its
 * Worker's `concurrency` and kinds never wait for each other.
 *
 * Mapping of the contract:
 * - attempt = BullMQ's `attemptsMade` (finished attempts) + `stalledCounter` (attempts lost with
 *   their worker) + 1 while active. So a crash, SIGKILL or outage longer than the lease does spend
 *   an attempt number, as in the SQLite adapter (which counts every claim): the pipeline runner,
 *   which records a run as failed once `attempt >= maxAttempts`, behaves the same on both. BullMQ
 *   itself dead-letters on failed attempts only (`attemptsMade`), and on stalls past `maxStalls`,
 *   so after stalls the attempt number can exceed `maxAttempts`. A job released by `stop()`, or
 *   handed back because it was claimed twice (see `process`), moves back to wait without touching
 *   either counter, so it spends no attempt; its `attemptsStarted` does grow and is not used.
 * - retries: `attempts` = maxAttempts and a custom backoff strategy that waits exactly
 *   `backoffDelay(attempt)`; the due time is stored in the job (`retryAt`) for `runAt`.
 * - lease: `lockDuration` = leaseMs, renewed every third of it; stalled checks every half, so a job
 *   whose worker died is handed out again within about 1.5 × leaseMs (45 s with the default). A
 *   handler whose lock was not renewed for a whole lease (BullMQ keeps silent while the backend
 *   cannot be reached) has its signal aborted: the lock has expired, another worker may run it.
 * - retention: completed jobs are kept for `keepCompletedMs` (7 days), dead ones for `keepDeadMs`
 *   (30 days), via BullMQ's `removeOnComplete`/`removeOnFail` `{ age }`. The job is what makes an
 *   enqueue with a deduplication key return the existing job, in any state, as the SQLite adapter
 *   does; that only matters while a run is unfinished (a new run has a new key), so pruning old
 *   jobs ends nothing that matters, and keeps `counts()` (read per metrics scrape) cheap. BullMQ
 *   prunes when a job of the same kind finishes, not on a timer, so jobs may outlive their age.
 */
export class BullmqJobQueue implements JobQueue {
  private readonly backend: BullmqBackend;
  private readonly leaseMs: number;
  private readonly maxAttempts: number;
  private readonly maxStalls: number;
  private readonly operationTimeoutMs: number;
  private readonly closeTimeoutMs: number;
  /** BullMQ's `removeOnComplete` / `removeOnFail`: the age in whole seconds. */
  private readonly keepCompleted: { age: number };
  private readonly keepDead: { age: number };
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
    this.closeTimeoutMs = positive('closeTimeoutMs', options.closeTimeoutMs ?? CLOSE_TIMEOUT_MS);
    this.keepCompleted = {
      age: Math.ceil(positive('keepCompletedMs', options.keepCompletedMs ?? KEEP_COMPLETED_MS) / 1_000),
    };
    this.keepDead = { age: Math.ceil(positive('keepDeadMs', options.keepDeadMs ?? KEEP_DEAD_MS) / 1_000) };
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
        removeOnComplete: this.keepCompleted,
        removeOnFail: this.keepDead,
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

  /**
   * Always resolves, within about `stop()`'s grace period plus five `closeTimeoutMs` (giving jobs
   * back, closing the workers, the schema preparation, then per BullMQ object its close and its
   * disconnect), even when the backend stopped answering: what did not close by then is left behind.
   */
  close(): Promise<void> {
    this.closePromise ??= (async () => {
      await this.stop();
      this.closed = true;
      this.prepareSleep?.cancel();
      // A migration still running would otherwise finish after close() (and, in tests, recreate a
      // schema that was just dropped); it ends within the connect timeout when the server is away,
      // but a server that stops answering mid-migration would hold it forever.
      if (!(await settlesWithin(this.ready, this.closeTimeoutMs)))
        this.logger.warn({}, 'job queue: schema preparation did not end in time; closing anyway');
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
      const client = new GuardedPgClient({
        connectionString: backend.url,
        connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS,
      });
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

  /**
   * Runs a caller's request against the backend, failing with a 503 error once it takes too long.
   * The errors made here for an unreachable backend are marked with `asOutage`, so that workers
   * wait them out and the HTTP layer answers 503; the backend's own connection errors (refused,
   * reset, ...) pass unchanged, `isOutage` knows them.
   */
  private async operation<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const run = (async () => {
      await this.ready;
      try {
        return await fn();
      } catch (err) {
        if (isQueryTimeout(err))
          throw asOutage(
            new AppError('UNAVAILABLE', 'The job queue cannot be reached right now; retry shortly.', {
              cause: err,
            }),
          );
        throw err;
      }
    })();
    return withTimeout(run, this.operationTimeoutMs, () =>
      asOutage(
        new AppError('UNAVAILABLE', 'The job queue cannot be reached right now; retry shortly.', {
          cause: new Error(`job queue: ${name} did not finish within ${this.operationTimeoutMs} ms`),
        }),
      ),
    );
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
      // BullMQ passes everything but its own keys to `new pg.Pool(...)`, which gives it to each
      // `pg.Client` (BullMQ 6.7 PostgresConnection; its LISTEN client gets the same config).
      keepAlive: true,
      keepAliveInitialDelayMillis: PG_KEEPALIVE_DELAY_MS,
      query_timeout: PG_QUERY_TIMEOUT_MS,
      // Pooled clients BullMQ holds between queries must not crash the process when PostgreSQL
      // goes away (its LISTEN client has a handler of its own).
      Client: GuardedPgClient,
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
    this.watchRenewals(slot, worker);
    worker.on('error', (err) =>
      this.log.report('error', `worker ${slot.kind}`, { err, kind: slot.kind }, 'job queue: worker error'),
    );
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

  /**
   * Learns the outcome of each lock renewal of the worker's jobs, with its token and the time it
   * was sent. BullMQ's own signals do not do: `lockRenewalFailed` is only emitted when the backend
   * answered that a lock is gone (not while it cannot be reached: its LockManager then emits a bare
   * 'error'), and `locksRenewed` carries neither the token (two claims of one job share its id) nor
   * when the renewal was sent (a lock renewed after a slow answer lasts from the send, at most).
   */
  private watchRenewals(slot: WorkerSlot, worker: BullWorker): void {
    const extend = worker.extendJobLocks.bind(worker);
    worker.extendJobLocks = async (jobIds, tokens, duration) => {
      const sentAt = Date.now();
      const refused = await extend(jobIds, tokens, duration);
      const lost = new Set(refused);
      jobIds.forEach((jobId, i) => {
        const flight = slot.flights.get(flightKey(jobId, tokens[i]));
        if (!flight) return;
        if (lost.has(jobId)) {
          this.loseLease(slot, flight, 'the backend refused to renew its lock');
        } else if (sentAt > flight.lockedAt) {
          flight.lockedAt = sentAt;
          this.armFence(slot, flight);
        }
      });
      return refused;
    };
  }

  /**
   * Self-fencing: once a flight's lock went a whole lease without a renewal it has expired for sure,
   * and another worker may already run the job; its handler is aborted (and its outcome discarded).
   */
  private armFence(slot: WorkerSlot, flight: Flight): void {
    clearTimeout(flight.fenceTimer);
    flight.fenceTimer = undefined;
    if (flight.released || flight.leaseLost) return;
    const remaining = flight.lockedAt + this.leaseMs - Date.now();
    if (remaining <= 0) {
      this.loseLease(slot, flight, `its lock was not renewed for ${this.leaseMs} ms`);
      return;
    }
    flight.fenceTimer = setTimeout(() => this.armFence(slot, flight), remaining);
  }

  /** The custom backoff strategy: until the due time the processor stored with the failure. */
  private retryDelay(attemptsMade: number, err: Error | undefined): number {
    if (err instanceof AttemptFailure && err.retryAt !== undefined)
      return Math.max(1, err.retryAt - Date.now());
    return Math.max(1, backoffDelay(attemptsMade, this.backoff));
  }

  /**
   * BullMQ's processor: runs the handler and turns its outcome into what BullMQ records.
   *
   * A job can reach this worker again while an earlier claim of it still runs here: its lock
   * expired during an outage longer than the lease (the handler ignored its aborted signal, or has
   * not reacted yet), the stalled checker moved it back to wait, and a free slot of this worker
   * claimed it. The new claim then holds the job without running the handler until every earlier
   * claim's processor returned, and hands it back to wait (no attempt spent; BullMQ tracks locks by
   * job id, so the old claim's end stops the renewals of the new lock, which is why the new claim
   * cannot simply run the handler then). Holding, rather than handing back at once, keeps the job
   * from running anywhere else while this process still runs it, and from being claimed again
   * and again in a loop by this same worker.
   */
  private async process(slot: WorkerSlot, job: BullJob, token: string | undefined): Promise<void> {
    // With PostgreSQL, a worker that is closing may still claim one job (its interrupted wait for
    // jobs returns "check now"): give it back untouched.
    if (this.stopping) {
      await this.release(job, token, 'stopping');
      throw new WaitingError('job queue: stopping');
    }
    const released = deferred();
    const leaseLost = deferred();
    const done = deferred();
    const jobId = job.id ?? '';
    const now = Date.now();
    const flight: Flight = {
      key: flightKey(jobId, token),
      job,
      token,
      controller: new AbortController(),
      finished: false,
      released: false,
      leaseLost: false,
      // BullMQ takes the lock with `processedOn` as its time; the claim was sent no later.
      lockedAt: Math.min(now, job.processedOn ?? now),
      fenceTimer: undefined,
      releasedSignal: released.promise,
      release: released.resolve,
      leaseLostSignal: leaseLost.promise,
      markLeaseLost: leaseLost.resolve,
      done: done.promise,
      markDone: done.resolve,
      progressTimer: undefined,
      pendingProgress: undefined,
      lastProgressWrite: Number.NEGATIVE_INFINITY,
      progressChain: Promise.resolve(),
    };
    const earlier = [...slot.flights.values()].filter((other) => other.job.id === jobId);
    slot.flights.set(flight.key, flight);
    this.armFence(slot, flight);
    try {
      if (earlier.length > 0) {
        await this.holdUntilEnded(slot, flight, earlier);
        throw new WaitingError('job queue: handed back, an earlier claim was still running');
      }
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
      // A lost lease does not end the wait: the handler was aborted and still occupies its slot.
      await Promise.race([handled, flight.releasedSignal]);
      // Released by stop() or lease lost: BullMQ must not write an outcome. A WaitingError makes
      // it leave the job alone (it means "the processor moved the job itself").
      if (flight.released) throw new WaitingError('job queue: released at shutdown');
      flight.finished = true;
      if (flight.leaseLost) {
        // The lock may still be this claim's (PostgreSQL renews an expired lock that nobody took, so
        // a short outage does not end it): give the job back now, without spending an attempt,
        // rather than once it stalls. The backend refuses when another claim holds the job.
        await this.release(job, token, 'lease lost', { quiet: true });
        throw new WaitingError('job queue: lease lost');
      }
      // From here BullMQ's lock check decides: an outcome written with a lock that expired is refused.
      await this.flushProgress(flight, true);
      if (failure) throw await this.failAttempt(job, record.attempt, failure.err);
    } finally {
      flight.finished = true;
      clearTimeout(flight.progressTimer);
      clearTimeout(flight.fenceTimer);
      if (slot.flights.get(flight.key) === flight) slot.flights.delete(flight.key);
      done.resolve();
    }
  }

  /** The claim side of a job claimed again while `earlier` claims of it are in flight (`process`). */
  private async holdUntilEnded(slot: WorkerSlot, flight: Flight, earlier: Flight[]): Promise<void> {
    // This claim exists, so the earlier ones' locks are gone; their outcomes must not be written.
    for (const other of earlier) this.loseLease(slot, other, 'the job was claimed again');
    this.logger.warn(
      { jobId: flight.job.id, kind: slot.kind },
      'job queue: job claimed again while an earlier claim still runs here; holding it until that ends',
    );
    await Promise.race([
      Promise.all(earlier.map((other) => other.done)),
      flight.releasedSignal,
      flight.leaseLostSignal,
    ]);
    // Released by stop() (which moved it) or lease lost (nothing to move): leave the job alone.
    if (flight.released || flight.leaseLost) return;
    flight.finished = true; // stop() must not release it a second time
    await this.release(flight.job, flight.token, 'hand back');
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

  /**
   * Gives an active job back to the waiting list without spending an attempt, if `token` still
   * holds its lock. Never rejects; gives up after `closeTimeoutMs` (ioredis retries a worker's
   * commands for as long as Redis is away). `quiet`: a refusal is expected, do not log it.
   */
  private async release(
    job: BullJob,
    token: string | undefined,
    why: string,
    { quiet = false } = {},
  ): Promise<void> {
    // Without a token moveToWait would skip the lock check; BullMQ always passes one.
    if (token === undefined) return;
    const moving = job.moveToWait(token);
    moving.catch((err: unknown) => {
      if (quiet) return;
      this.logger.error(
        { err, jobId: job.id, kind: job.queueName, why },
        'job queue: could not give the job back; it runs again once its lock expires',
      );
    });
    if (!(await settlesWithin(moving, this.closeTimeoutMs)) && !quiet)
      this.logger.error(
        { jobId: job.id, kind: job.queueName, why },
        'job queue: giving the job back timed out; it runs again once its lock expires',
      );
  }

  /** The flight's lock is (or may be) gone: abort its handler and discard its outcome. */
  private loseLease(slot: WorkerSlot, flight: Flight, reason: string): void {
    if (flight.finished || flight.released || flight.leaseLost) return;
    flight.leaseLost = true;
    clearTimeout(flight.fenceTimer);
    clearTimeout(flight.progressTimer);
    flight.pendingProgress = undefined;
    flight.markLeaseLost();
    this.logger.warn(
      { jobId: flight.job.id, kind: slot.kind, reason },
      'job queue: lease lost; aborting the handler',
    );
    flight.controller.abort(new Error(`job queue: lease lost (${reason})`));
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
        clearTimeout(flight.fenceTimer);
        // A flight whose lease is lost holds no lock to give back; its processor still has to return.
        if (!flight.leaseLost) await this.release(flight.job, flight.token, 'grace period over');
        flight.controller.abort(new Error('job queue: stopped, grace period over'));
        flight.release();
      }),
    );
    await settlesWithin(Promise.allSettled(closing), this.closeTimeoutMs);
  }

  private allFlights(): Flight[] {
    return [...this.slots.values()].flatMap((slot) => [...slot.flights.values()]);
  }

  /**
   * Closes a BullMQ object, then drops its connections if that takes too long. Both steps are
   * bounded: for PostgreSQL `disconnect()` is the same (memoised) close, whose `pool.end()` waits
   * for every checked-out connection, so a query stuck against a black-holed server would hold it
   * until `query_timeout`, or forever for an idle connection's goodbye that is never answered.
   */
  private async closeBounded(what: string, target: { close(): Promise<void>; disconnect(): Promise<void> }) {
    if (await settlesWithin(target.close(), this.closeTimeoutMs)) return;
    this.logger.warn({ what }, 'job queue: close timed out; dropping the connections');
    if (await settlesWithin(target.disconnect(), this.closeTimeoutMs)) return;
    this.logger.warn({ what }, 'job queue: could not drop the connections in time; leaving them behind');
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
