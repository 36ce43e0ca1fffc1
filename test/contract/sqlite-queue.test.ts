import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { LEASE_LOST_ERROR, type QueueLogger, SqliteJobQueue } from '../../src/queue/sqlite-queue.js';
import { tempDir } from '../helpers/tmp.js';
import { killFixtures, runFixture as runFixtureScript, startDoomedFixture } from './fixture-process.js';
import { type JobQueueHarnessOptions, jobQueueContract, waitFor } from './job-queue.contract.js';

const _ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURE = fileURLToPath(new URL('./sqlite-queue-worker.fixture.ts', import.meta.url));
const POLL_MS = 50;

interface LogEntry {
  level: 'warn' | 'error';
  obj: object;
  msg: string;
}

function recordingLogger(entries: LogEntry[] = []): QueueLogger & { entries: LogEntry[] } {
  return {
    entries,
    warn: (obj, msg) => entries.push({ level: 'warn', obj, msg }),
    error: (obj, msg) => entries.push({ level: 'error', obj, msg }),
  };
}

function runFixture(args: string[]): ChildProcess {
  return runFixtureScript(FIXTURE, args);
}

async function runToEnd(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = runFixture(args);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

jobQueueContract('SqliteJobQueue', async (options: JobQueueHarnessOptions) => {
  const tmp = await tempDir('assetpipe-queue-');
  const file = join(tmp.dir, 'assetpipe.db');
  const queues: SqliteJobQueue[] = [];
  const children: ChildProcess[] = [];
  const make = () => {
    const queue = new SqliteJobQueue({ file, pollMs: POLL_MS, logger: recordingLogger(), ...options });
    queues.push(queue);
    return queue;
  };
  return {
    queue: make(),
    makeSecondQueue: async () => make(),
    startDoomedWorker: (kind) =>
      startDoomedFixture(FIXTURE, ['hang', file, kind, String(options.leaseMs)], children),
    cleanup: async () => {
      await killFixtures(children);
      for (const queue of queues) {
        await queue.stop({ graceMs: 100 });
        await queue.close();
      }
      await tmp.cleanup();
    },
  };
});

describe('SqliteJobQueue specifics', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function freshFile(): Promise<string> {
    const tmp = await tempDir('assetpipe-queue-');
    cleanups.push(tmp.cleanup);
    return join(tmp.dir, 'assetpipe.db');
  }

  function open(file: string, extra: Partial<ConstructorParameters<typeof SqliteJobQueue>[0]> = {}) {
    const queue = new SqliteJobQueue({ file, pollMs: POLL_MS, logger: recordingLogger(), ...extra });
    cleanups.push(async () => {
      await queue.stop({ graceMs: 100 });
      await queue.close();
    });
    return queue;
  }

  function raw(file: string): Database.Database {
    const db = new Database(file, { timeout: 10_000 });
    cleanups.push(async () => {
      db.close();
    });
    return db;
  }

  it('creates its tables next to other tables, in WAL mode, and migrates once', async () => {
    const file = await freshFile();
    const db = raw(file);
    db.exec("CREATE TABLE catalog_assets (id TEXT PRIMARY KEY); INSERT INTO catalog_assets VALUES ('ast_1')");
    const first = open(file);
    open(file);
    await first.enqueue('k', { a: 1 });
    expect(raw(file).pragma('journal_mode', { simple: true })).toBe('wal'); // a fresh connection sees the mode
    expect(db.prepare('SELECT version FROM queue_migrations').all()).toEqual([{ version: 1 }]);
    expect(db.prepare('SELECT id FROM catalog_assets').all()).toEqual([{ id: 'ast_1' }]);
    expect(db.prepare('SELECT kind, state, attempt FROM queue_jobs').all()).toEqual([
      { kind: 'k', state: 'queued', attempt: 0 },
    ]);
  });

  it('lets several processes start on a fresh file at the same time', async () => {
    const file = await freshFile();
    const results = await Promise.all([1, 2, 3, 4].map(() => runToEnd(['enqueue', file, 'boot'])));
    for (const result of results) expect(result, result.stderr).toMatchObject({ code: 0 });
    const queue = open(file);
    expect((await queue.counts()).boot).toEqual({ waiting: 4, delayed: 0, active: 0, completed: 0, dead: 0 });
    const ids = results.map((r) => r.stdout.trim());
    for (const id of ids) expect((await queue.getJob(id))?.status).toBe('waiting');
    expect(raw(file).prepare('SELECT version FROM queue_migrations').all()).toEqual([{ version: 1 }]);
  });

  it('aborts the handler and discards its result when the lease is lost', async () => {
    const file = await freshFile();
    const logger = recordingLogger();
    const queue = open(file, { leaseMs: 300, logger });
    let aborted = false;
    let settled = false;
    queue.work('lease', (_job, ctx) => {
      return new Promise<void>((resolve) => {
        ctx.signal.addEventListener('abort', () => {
          aborted = true;
          setTimeout(() => {
            settled = true;
            resolve();
          }, 50);
        });
      });
    });
    const { id } = await queue.enqueue('lease', {});
    await waitFor(async () => (await queue.getJob(id))?.status === 'active', 10_000, 'job to start');
    // Another worker took the job over (as after an expired lease): the token no longer matches.
    raw(file)
      .prepare("UPDATE queue_jobs SET lock_token = 'stolen', locked_until = ? WHERE id = ?")
      .run(Date.now() + 60_000, id);
    await waitFor(() => aborted, 10_000, 'the handler to be aborted');
    await waitFor(() => settled, 10_000, 'the handler to settle');
    await sleep(100);
    const row = raw(file).prepare('SELECT state, lock_token FROM queue_jobs WHERE id = ?').get(id);
    expect(row).toEqual({ state: 'active', lock_token: 'stolen' });
    expect(logger.entries.some((e) => e.level === 'warn' && e.msg.includes('lease lost'))).toBe(true);
  });

  it('dead-letters an expired job that used all attempts, and retries one that did not', async () => {
    const file = await freshFile();
    const queue = open(file);
    const exhausted = await queue.enqueue('expired', { which: 'exhausted' }, { maxAttempts: 1 });
    const retryable = await queue.enqueue('expired', { which: 'retryable' }, { maxAttempts: 3 });
    raw(file)
      .prepare(
        `UPDATE queue_jobs SET state = 'active', attempt = 1, lock_token = 'gone', locked_until = ?
          WHERE kind = 'expired'`,
      )
      .run(Date.now() - 1);
    const ran: Array<[string, number]> = [];
    queue.work<{ which: string }>('expired', async (job, ctx) => {
      ran.push([job.payload.which, ctx.attempt]);
    });
    await waitFor(async () => (await queue.getJob(retryable.id))?.status === 'completed', 10_000, 'retry');
    expect(await queue.getJob(exhausted.id)).toMatchObject({
      status: 'dead',
      attempt: 1,
      lastError: LEASE_LOST_ERROR,
    });
    expect(await queue.getJob(retryable.id)).toMatchObject({ attempt: 2, lastError: LEASE_LOST_ERROR });
    expect(ran).toEqual([['retryable', 2]]);
    expect((await queue.listDead('expired')).map((j) => j.id)).toEqual([exhausted.id]);
  });

  it('logs database errors while polling and keeps polling', async () => {
    const file = await freshFile();
    const logger = recordingLogger();
    const queue = open(file, { logger });
    const ran: string[] = [];
    queue.work('resilient', async (job) => {
      ran.push(job.id);
    });
    const db = raw(file);
    db.exec('DROP TABLE queue_jobs; DELETE FROM queue_migrations');
    await waitFor(
      () => logger.entries.some((e) => e.level === 'error'),
      10_000,
      'a polling error to be logged',
    );
    expect(logger.entries.find((e) => e.level === 'error')?.msg).toContain('polling failed');
    const other = open(file); // recreates the schema
    const { id } = await other.enqueue('resilient', {});
    await waitFor(async () => (await other.getJob(id))?.status === 'completed', 10_000, 'the job to run');
    expect(ran).toEqual([id]);
  });

  it('takes every time decision from the injected clock', async () => {
    const file = await freshFile();
    let now = Date.now();
    const queue = open(file, { now: () => now });
    const { id } = await queue.enqueue('clocked', {}, { delayMs: 10_000 });
    const ran: number[] = [];
    queue.work('clocked', async (_job, ctx) => {
      ran.push(ctx.attempt);
    });
    expect((await queue.getJob(id))?.status).toBe('delayed');
    expect((await queue.counts()).clocked).toMatchObject({ delayed: 1, waiting: 0 });
    await sleep(300); // real time passes, the injected clock does not
    expect(ran).toEqual([]);
    now += 10_000;
    expect((await queue.getJob(id))?.status).toBe('waiting');
    await waitFor(async () => (await queue.getJob(id))?.status === 'completed', 10_000, 'the job to run');
    expect(ran).toEqual([1]);
    expect((await queue.getJob(id))?.finishedAt?.getTime()).toBe(now);
  });

  it('coalesces progress writes and always writes 100', async () => {
    const file = await freshFile();
    const queue = open(file);
    const { id } = await queue.enqueue('chatty', {});
    const db = raw(file);
    db.exec(`CREATE TABLE progress_log (p REAL);
      CREATE TRIGGER progress_logger AFTER UPDATE OF progress ON queue_jobs
      BEGIN INSERT INTO progress_log VALUES (NEW.progress); END;`);
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    cleanups.push(async () => release());
    let reported = false;
    queue.work('chatty', async (_job, ctx) => {
      for (let p = 1; p < 100; p++) await ctx.progress(p);
      await ctx.progress(100);
      reported = true;
      await held;
    });
    await waitFor(() => reported, 10_000, 'the handler to report progress');
    const writes = db
      .prepare<[], { p: number }>('SELECT p FROM progress_log')
      .all()
      .map((r) => r.p);
    expect(writes.length).toBeGreaterThanOrEqual(1);
    expect(writes.length).toBeLessThanOrEqual(3);
    expect(writes.at(-1)).toBe(100);
    release();
    await waitFor(async () => (await queue.getJob(id))?.status === 'completed', 10_000, 'completion');
  });

  it('close() is idempotent and later calls fail clearly', async () => {
    const file = await freshFile();
    const queue = new SqliteJobQueue({ file, pollMs: POLL_MS, logger: recordingLogger() });
    queue.work('closing', async () => {});
    await Promise.all([queue.close(), queue.close()]);
    await queue.close();
    await queue.stop();
    await expect(queue.enqueue('closing', {})).rejects.toThrow(/closed/);
    await expect(queue.getJob('job_00000000000000000000000000')).rejects.toThrow(/closed/);
    expect(() => queue.work('other', async () => {})).toThrow(/closed/);
  });
});
