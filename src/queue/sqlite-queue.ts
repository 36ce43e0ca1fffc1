import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { newId } from '../domain/ids.js';
import { errorMessage } from '../errors.js';
import { enableWal } from '../lib/sqlite-wal.js';
import { sqliteWriteLock, type WriteLock } from '../lib/sqlite-write-lock.js';
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

/** The subset of a pino logger the queue uses. */
export interface QueueLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface SqliteJobQueueOptions {
  /** SQLite database file; may be shared with the catalog and with other processes. */
  file: string;
  /** How long a claimed job belongs to its worker without a heartbeat. @default 30000 */
  leaseMs?: number | undefined;
  /** How often an idle worker looks for runnable jobs. @default 500 */
  pollMs?: number | undefined;
  /** Attempts before a job is dead-lettered, unless the job says otherwise. @default 5 */
  maxAttempts?: number | undefined;
  backoff?: BackoffPolicy | undefined;
  logger?: QueueLogger | undefined;
  /** Clock for every time decision (run_at, leases, finished_at); timers stay real. @default Date.now */
  now?: (() => number) | undefined;
  /**
   * Serialises this process's writes to the file with other connections of this process (the
   * catalog's). @default the process-wide lock of `file`
   */
  writeLock?: WriteLock | undefined;
}

/** Stored states; `queued` is reported as `delayed` or `waiting` depending on `run_at`. */
type StoredState = 'queued' | 'active' | 'completed' | 'dead';

interface JobRow {
  seq: number;
  id: string;
  kind: string;
  dedupe_key: string | null;
  payload: string;
  state: StoredState;
  attempt: number;
  max_attempts: number;
  last_error: string | null;
  progress: number;
  created_at: number;
  run_at: number;
  finished_at: number | null;
  lock_token: string | null;
  locked_until: number | null;
}

interface NewJobRow {
  id: string;
  kind: string;
  key: string | null;
  payload: string;
  maxAttempts: number;
  now: number;
  runAt: number;
}

type Timer = ReturnType<typeof setTimeout>;

/** A job this instance is running. */
interface InFlight {
  readonly id: string;
  readonly token: string;
  readonly controller: AbortController;
  /** The outcome must not be written any more: the lease was lost or `stop()` released the job. */
  detached: boolean;
  /** The handler has settled. */
  finished: boolean;
  heartbeat: Timer | undefined;
  progressTimer: Timer | undefined;
  pendingProgress: number | undefined;
  lastProgressWrite: number;
  /** Settles (never rejects) once the handler has settled and its outcome is recorded. */
  done: Promise<void>;
}

interface Worker {
  readonly kind: string;
  readonly handler: JobHandler<unknown>;
  readonly concurrency: number;
  /**
   * Running handlers by lock token (not job id: if this process lost a lease and claimed the same
   * job again, both handlers count against the concurrency until the aborted one settles).
   */
  readonly inFlight: Map<string, InFlight>;
  /** A poll is claiming jobs right now (claims are async while they wait for the write lock). */
  polling?: boolean;
  timer: Timer | undefined;
}

export const LEASE_LOST_ERROR = 'lease expired: worker lost';
const PROGRESS_INTERVAL_MS = 250;
const DEFAULT_GRACE_MS = 30_000;

/**
 * Schema migrations, applied in order inside one `BEGIN IMMEDIATE` transaction, so that several
 * processes starting at once apply each exactly once. Never edit an entry; append a new one.
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE IF NOT EXISTS queue_jobs (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT    NOT NULL UNIQUE,
    kind         TEXT    NOT NULL,
    dedupe_key   TEXT,
    payload      TEXT    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('queued', 'active', 'completed', 'dead')),
    attempt      INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    last_error   TEXT,
    progress     REAL    NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    run_at       INTEGER NOT NULL,
    finished_at  INTEGER,
    lock_token   TEXT,
    locked_until INTEGER
  );
  CREATE UNIQUE INDEX IF NOT EXISTS queue_jobs_dedupe ON queue_jobs (kind, dedupe_key)
    WHERE dedupe_key IS NOT NULL;
  CREATE INDEX IF NOT EXISTS queue_jobs_claim ON queue_jobs (kind, state, run_at, seq);
  CREATE INDEX IF NOT EXISTS queue_jobs_finished ON queue_jobs (state, finished_at);
  `,
];

function migrate(db: Database.Database, now: number): void {
  db.transaction(() => {
    db.exec(
      'CREATE TABLE IF NOT EXISTS queue_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)',
    );
    const row = db.prepare<[], { v: number | null }>('SELECT MAX(version) AS v FROM queue_migrations').get();
    const current = row?.v ?? 0;
    for (let version = current + 1; version <= MIGRATIONS.length; version++) {
      db.exec(MIGRATIONS[version - 1] ?? '');
      db.prepare('INSERT INTO queue_migrations (version, applied_at) VALUES (?, ?)').run(version, now);
    }
  }).immediate();
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${name} must be a positive number`);
  return value;
}

function positiveInt(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be an integer >= 1`);
  return value;
}

function prepareStatements(db: Database.Database) {
  return {
    insert: db.prepare<NewJobRow>(
      `INSERT INTO queue_jobs (id, kind, dedupe_key, payload, state, max_attempts, created_at, run_at)
       VALUES (@id, @kind, @key, @payload, 'queued', @maxAttempts, @now, @runAt)
       ON CONFLICT (kind, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING`,
    ),
    byKey: db.prepare<{ kind: string; key: string }, { id: string }>(
      'SELECT id FROM queue_jobs WHERE kind = @kind AND dedupe_key = @key',
    ),
    byId: db.prepare<[string], JobRow>('SELECT * FROM queue_jobs WHERE id = ?'),
    reapExhausted: db.prepare<{ kind: string; now: number; error: string }>(
      `UPDATE queue_jobs
          SET state = 'dead', last_error = @error, finished_at = @now, lock_token = NULL, locked_until = NULL
        WHERE kind = @kind AND state = 'active' AND locked_until <= @now AND attempt >= max_attempts`,
    ),
    nextRunnable: db.prepare<{ kind: string; now: number }, { id: string }>(
      `SELECT id FROM queue_jobs
        WHERE kind = @kind
          AND ((state = 'queued' AND run_at <= @now) OR (state = 'active' AND locked_until <= @now))
        ORDER BY run_at, seq
        LIMIT 1`,
    ),
    claim: db.prepare<{ id: string; token: string; until: number; error: string }, JobRow>(
      `UPDATE queue_jobs
          SET state = 'active',
              attempt = attempt + 1,
              lock_token = @token,
              locked_until = @until,
              last_error = CASE WHEN state = 'active' THEN @error ELSE last_error END
        WHERE id = @id
        RETURNING *`,
    ),
    heartbeat: db.prepare<{ id: string; token: string; until: number }>(
      `UPDATE queue_jobs SET locked_until = @until
        WHERE id = @id AND lock_token = @token AND state = 'active'`,
    ),
    progress: db.prepare<{ id: string; token: string; progress: number }>(
      `UPDATE queue_jobs SET progress = @progress
        WHERE id = @id AND lock_token = @token AND state = 'active'`,
    ),
    complete: db.prepare<{ id: string; token: string; now: number; progress: number | null }>(
      `UPDATE queue_jobs
          SET state = 'completed', finished_at = @now, lock_token = NULL, locked_until = NULL,
              progress = COALESCE(@progress, progress)
        WHERE id = @id AND lock_token = @token`,
    ),
    retry: db.prepare<{ id: string; token: string; runAt: number; error: string; progress: number | null }>(
      `UPDATE queue_jobs
          SET state = 'queued', run_at = @runAt, last_error = @error, lock_token = NULL, locked_until = NULL,
              progress = COALESCE(@progress, progress)
        WHERE id = @id AND lock_token = @token`,
    ),
    bury: db.prepare<{ id: string; token: string; now: number; error: string; progress: number | null }>(
      `UPDATE queue_jobs
          SET state = 'dead', finished_at = @now, last_error = @error, lock_token = NULL, locked_until = NULL,
              progress = COALESCE(@progress, progress)
        WHERE id = @id AND lock_token = @token`,
    ),
    release: db.prepare<{ id: string; token: string; now: number }>(
      `UPDATE queue_jobs
          SET state = 'queued', run_at = @now, attempt = MAX(attempt - 1, 0), lock_token = NULL,
              locked_until = NULL
        WHERE id = @id AND lock_token = @token`,
    ),
    dead: db.prepare<{ kind: string | null; limit: number }, JobRow>(
      `SELECT * FROM queue_jobs
        WHERE state = 'dead' AND (@kind IS NULL OR kind = @kind)
        ORDER BY finished_at DESC, seq DESC
        LIMIT @limit`,
    ),
    counts: db.prepare<{ now: number }, { kind: string; status: JobStatus; n: number }>(
      `SELECT kind,
              CASE WHEN state = 'queued' THEN (CASE WHEN run_at > @now THEN 'delayed' ELSE 'waiting' END)
                   ELSE state END AS status,
              COUNT(*) AS n
         FROM queue_jobs
        GROUP BY kind, status`,
    ),
  };
}

type Statements = ReturnType<typeof prepareStatements>;

const consoleLogger: QueueLogger = {
  warn: (obj, msg) => console.warn(msg, obj),
  error: (obj, msg) => console.error(msg, obj),
};

/**
 * `JobQueue` on a SQLite file (WAL), safe for several processes: claims, heartbeats and outcomes
 * are single statements or `BEGIN IMMEDIATE` transactions, and every write about a running job is
 * guarded by the random lock token handed out with the claim.
 */
export class SqliteJobQueue implements JobQueue {
  private readonly db: Database.Database;
  private readonly stmts: Statements;
  private readonly leaseMs: number;
  private readonly pollMs: number;
  private readonly maxAttempts: number;
  private readonly backoff: BackoffPolicy;
  private readonly logger: QueueLogger;
  private readonly now: () => number;
  private readonly writeLock: WriteLock;
  private readonly workers = new Map<string, Worker>();
  private readonly enqueueTx: (row: NewJobRow) => { id: string; created: boolean };
  private readonly claimTx: (kind: string) => JobRow | undefined;
  private stopping = false;
  private closed = false;
  private stopPromise: Promise<void> | undefined;
  private closePromise: Promise<void> | undefined;

  constructor(options: SqliteJobQueueOptions) {
    this.leaseMs = positive('leaseMs', options.leaseMs ?? 30_000);
    this.pollMs = positive('pollMs', options.pollMs ?? 500);
    this.maxAttempts = positiveInt('maxAttempts', options.maxAttempts ?? 5);
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.logger = options.logger ?? consoleLogger;
    this.now = options.now ?? Date.now;
    this.writeLock = options.writeLock ?? sqliteWriteLock(options.file);

    const db = new Database(options.file, { timeout: 10_000 });
    try {
      db.pragma('busy_timeout = 10000');
      const mode = enableWal(db, 10_000);
      if (mode !== 'wal')
        this.logger.warn({ file: options.file, mode }, 'job queue: could not enable WAL mode');
      db.pragma('synchronous = NORMAL');
      migrate(db, this.now());
      this.stmts = prepareStatements(db);
    } catch (err) {
      db.close();
      throw err;
    }
    this.db = db;

    const stmts = this.stmts;
    this.enqueueTx = db.transaction((row: NewJobRow) => {
      if (stmts.insert.run(row).changes === 1) return { id: row.id, created: true };
      const existing = row.key === null ? undefined : stmts.byKey.get({ kind: row.kind, key: row.key });
      if (!existing) throw new Error('job queue: insert ignored but no job holds the key');
      return { id: existing.id, created: false };
    }).immediate;

    this.claimTx = db.transaction((kind: string): JobRow | undefined => {
      const now = this.now();
      const reaped = stmts.reapExhausted.run({ kind, now, error: LEASE_LOST_ERROR }).changes;
      if (reaped > 0)
        this.logger.warn({ kind, jobs: reaped }, 'job queue: dead-lettered jobs whose worker was lost');
      const next = stmts.nextRunnable.get({ kind, now });
      if (!next) return undefined;
      return stmts.claim.get({
        id: next.id,
        token: randomBytes(16).toString('hex'),
        until: now + this.leaseMs,
        error: LEASE_LOST_ERROR,
      });
    }).immediate;
  }

  async enqueue<P>(
    kind: string,
    payload: P,
    options: EnqueueOptions = {},
  ): Promise<{ id: string; created: boolean }> {
    this.assertOpen();
    if (typeof kind !== 'string' || kind.length === 0) throw new TypeError('kind must be a non-empty string');
    const delayMs = options.delayMs ?? 0;
    if (!Number.isFinite(delayMs) || delayMs < 0) throw new RangeError('delayMs must be a number >= 0');
    const maxAttempts = positiveInt('maxAttempts', options.maxAttempts ?? this.maxAttempts);
    const json = JSON.stringify(payload === undefined ? null : payload);
    const now = this.now();
    const result = await this.write(() =>
      this.enqueueTx({
        id: newId('job'),
        kind,
        key: options.key ?? null,
        payload: json,
        maxAttempts,
        now,
        runAt: now + delayMs,
      }),
    );
    if (result.created) {
      const worker = this.workers.get(kind);
      if (worker) this.schedule(worker, 0);
    }
    return result;
  }

  work<P>(kind: string, handler: JobHandler<P>, options: WorkOptions = {}): void {
    this.assertOpen();
    if (this.stopping) throw new Error('job queue: stopped, cannot start a worker');
    if (this.workers.has(kind))
      throw new Error(`job queue: kind "${kind}" already has a worker in this queue`);
    const worker: Worker = {
      kind,
      handler: handler as JobHandler<unknown>,
      concurrency: positiveInt('concurrency', options.concurrency ?? 1),
      inFlight: new Map(),
      timer: undefined,
    };
    this.workers.set(kind, worker);
    this.schedule(worker, 0);
  }

  async getJob<P = unknown>(id: string): Promise<JobRecord<P> | undefined> {
    this.assertOpen();
    const row = this.stmts.byId.get(id);
    return row ? this.toRecord<P>(row, this.now()) : undefined;
  }

  async listDead(kind?: string, limit = 100): Promise<JobRecord[]> {
    this.assertOpen();
    const now = this.now();
    return this.stmts.dead
      .all({ kind: kind ?? null, limit: positiveInt('limit', limit) })
      .map((row) => this.toRecord(row, now));
  }

  async counts(): Promise<Record<string, Record<JobStatus, number>>> {
    this.assertOpen();
    const out: Record<string, Record<JobStatus, number>> = {};
    for (const { kind, status, n } of this.stmts.counts.all({ now: this.now() })) {
      let perKind = out[kind];
      if (!perKind) {
        perKind = Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as Record<JobStatus, number>;
        out[kind] = perKind;
      }
      perKind[status] += n;
    }
    return out;
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
      this.db.close();
    })();
    return this.closePromise;
  }

  // --- internals ---------------------------------------------------------------------------

  /** Calls stay allowed while `close()` waits for in-flight jobs: their handlers may enqueue follow-ups. */
  private assertOpen(): void {
    if (this.closed) throw new Error('job queue: closed');
  }

  private async shutdown(graceMs: number): Promise<void> {
    this.stopping = true;
    for (const worker of this.workers.values()) {
      clearTimeout(worker.timer);
      worker.timer = undefined;
    }
    const running = this.allInFlight();
    if (running.length > 0) {
      let timer: Timer | undefined;
      const grace = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, Math.max(0, graceMs));
      });
      await Promise.race([Promise.all(running.map((flight) => flight.done)), grace]);
      clearTimeout(timer);
    }
    for (const flight of this.allInFlight()) {
      if (flight.finished || flight.detached) continue;
      this.detach(flight);
      try {
        await this.write(() =>
          this.stmts.release.run({ id: flight.id, token: flight.token, now: this.now() }),
        );
      } catch (err) {
        this.logger.error({ err, jobId: flight.id }, 'job queue: could not release job at shutdown');
      }
      flight.controller.abort(new Error('job queue: stopped, grace period over'));
    }
  }

  private allInFlight(): InFlight[] {
    return [...this.workers.values()].flatMap((worker) => [...worker.inFlight.values()]);
  }

  private schedule(worker: Worker, delayMs: number): void {
    if (this.stopping) return;
    clearTimeout(worker.timer);
    worker.timer = setTimeout(() => void this.poll(worker), delayMs);
  }

  private async poll(worker: Worker): Promise<void> {
    worker.timer = undefined;
    if (this.stopping || worker.polling) return;
    worker.polling = true;
    try {
      while (worker.inFlight.size < worker.concurrency && !this.stopping) {
        const row = await this.write(() => this.claimTx(worker.kind));
        if (!row) break;
        this.start(worker, row);
      }
    } catch (err) {
      this.logger.error({ err, kind: worker.kind }, 'job queue: polling failed');
    } finally {
      worker.polling = false;
    }
    this.schedule(worker, this.pollMs);
  }

  /**
   * Every write goes through the process-wide lock of this database file: better-sqlite3 waits for
   * a busy database synchronously, so a claim that waited here for the catalog's open transaction
   * (another connection of this same process) would block the event loop that transaction needs
   * to commit.
   */
  private write<T>(fn: () => T): Promise<T> {
    return this.writeLock(async () => fn());
  }

  private start(worker: Worker, row: JobRow): void {
    const flight: InFlight = {
      id: row.id,
      token: row.lock_token ?? '',
      controller: new AbortController(),
      detached: false,
      finished: false,
      heartbeat: undefined,
      progressTimer: undefined,
      pendingProgress: undefined,
      lastProgressWrite: Number.NEGATIVE_INFINITY,
      done: Promise.resolve(),
    };
    worker.inFlight.set(flight.token, flight);
    flight.heartbeat = setInterval(() => void this.beat(flight), Math.max(1, Math.floor(this.leaseMs / 3)));
    const ctx: JobContext = {
      attempt: row.attempt,
      signal: flight.controller.signal,
      progress: async (percent) => this.reportProgress(flight, percent),
    };
    flight.done = this.run(worker, flight, row, ctx);
  }

  private async run(worker: Worker, flight: InFlight, row: JobRow, ctx: JobContext): Promise<void> {
    let failure: { err: unknown } | undefined;
    try {
      await worker.handler(this.toRecord(row, this.now()), ctx);
    } catch (err) {
      failure = { err };
    }
    try {
      await this.settle(flight, row, failure);
    } catch (err) {
      this.logger.error({ err, jobId: flight.id }, 'job queue: could not record job outcome');
    } finally {
      worker.inFlight.delete(flight.token);
      this.schedule(worker, 0);
    }
  }

  private async settle(flight: InFlight, row: JobRow, failure: { err: unknown } | undefined): Promise<void> {
    flight.finished = true;
    clearInterval(flight.heartbeat);
    clearTimeout(flight.progressTimer);
    if (flight.detached) return; // lease lost or released: someone else owns the outcome now
    const { id, token } = flight;
    const progress = flight.pendingProgress ?? null;
    const now = this.now();
    let changes: number;
    if (!failure) {
      changes = (await this.write(() => this.stmts.complete.run({ id, token, now, progress }))).changes;
    } else {
      const error = errorMessage(failure.err);
      if (row.attempt < row.max_attempts) {
        const runAt = now + backoffDelay(row.attempt, this.backoff);
        changes = (await this.write(() => this.stmts.retry.run({ id, token, runAt, error, progress })))
          .changes;
      } else {
        changes = (await this.write(() => this.stmts.bury.run({ id, token, now, error, progress }))).changes;
      }
    }
    if (changes === 0) {
      this.logger.warn({ jobId: id }, 'job queue: lease lost before the job finished; outcome discarded');
    }
  }

  private async beat(flight: InFlight): Promise<void> {
    if (flight.detached || flight.finished) return;
    try {
      const { changes } = await this.write(() =>
        this.stmts.heartbeat.run({ id: flight.id, token: flight.token, until: this.now() + this.leaseMs }),
      );
      if (changes === 0 && !flight.finished && !flight.detached) this.loseLease(flight);
    } catch (err) {
      this.logger.warn({ err, jobId: flight.id }, 'job queue: heartbeat failed');
    }
  }

  private loseLease(flight: InFlight): void {
    this.detach(flight);
    this.logger.warn({ jobId: flight.id }, 'job queue: lease lost; aborting the handler');
    flight.controller.abort(new Error('job queue: lease lost'));
  }

  private detach(flight: InFlight): void {
    flight.detached = true;
    clearInterval(flight.heartbeat);
    clearTimeout(flight.progressTimer);
    flight.progressTimer = undefined;
    flight.pendingProgress = undefined;
  }

  private reportProgress(flight: InFlight, percent: number): void {
    if (flight.detached || flight.finished || !Number.isFinite(percent)) return;
    const value = Math.min(100, Math.max(0, percent));
    flight.pendingProgress = value;
    const elapsed = this.now() - flight.lastProgressWrite;
    if (value >= 100 || elapsed >= PROGRESS_INTERVAL_MS) {
      void this.flushProgress(flight);
    } else {
      flight.progressTimer ??= setTimeout(
        () => void this.flushProgress(flight),
        PROGRESS_INTERVAL_MS - elapsed,
      );
    }
  }

  private async flushProgress(flight: InFlight): Promise<void> {
    clearTimeout(flight.progressTimer);
    flight.progressTimer = undefined;
    const progress = flight.pendingProgress;
    if (progress === undefined || flight.detached || flight.finished) return;
    flight.pendingProgress = undefined;
    flight.lastProgressWrite = this.now();
    try {
      const { changes } = await this.write(() =>
        this.stmts.progress.run({ id: flight.id, token: flight.token, progress }),
      );
      if (changes === 0 && !flight.finished && !flight.detached) this.loseLease(flight);
    } catch (err) {
      this.logger.warn({ err, jobId: flight.id }, 'job queue: could not store progress');
    }
  }

  private toRecord<P>(row: JobRow, now: number): JobRecord<P> {
    let status: JobStatus;
    if (row.state === 'queued') status = row.run_at > now ? 'delayed' : 'waiting';
    else status = row.state;
    return {
      id: row.id,
      kind: row.kind,
      payload: JSON.parse(row.payload) as P,
      status,
      attempt: row.attempt,
      maxAttempts: row.max_attempts,
      lastError: row.last_error,
      progress: row.progress,
      createdAt: new Date(row.created_at),
      runAt: new Date(row.run_at),
      finishedAt: row.finished_at === null ? null : new Date(row.finished_at),
    };
  }
}
