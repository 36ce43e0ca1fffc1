import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { type AddressInfo, createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { createPostgresBackend, Worker, withBackend } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { redactUrl } from '../../src/config.js';
import { isOutage } from '../../src/lib/outage.js';
import {
  type BullmqBackend,
  BullmqJobQueue,
  type BullmqJobQueueOptions,
} from '../../src/queue/bullmq-queue.js';
import type { JobQueue } from '../../src/queue/job-queue.js';
import type { QueueLogger } from '../../src/queue/sqlite-queue.js';
import { probePostgres } from '../helpers/postgres.js';
import {
  exited,
  killFixtures,
  runFixture as runFixtureScript,
  startDoomedFixture,
  waitForLine,
} from './fixture-process.js';
import { type JobQueueHarnessOptions, jobQueueContract, waitFor } from './job-queue.contract.js';

const _ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURE = fileURLToPath(new URL('./bullmq-queue-worker.fixture.ts', import.meta.url));
const DATABASE_URL = process.env.ASSETPIPE_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const REDIS_URL = process.env.ASSETPIPE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

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

const redact = redactUrl;

type Reachability = { ok: true } | { ok: false; reason: string };

function reason(err: unknown): string {
  return err instanceof Error ? err.message || err.name : String(err);
}

async function probeRedis(url: string): Promise<Reachability> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 3000,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  // ioredis rejects with "Connection is closed"; the socket error it emitted says why.
  let socketError: unknown;
  client.on('error', (err) => {
    socketError = err;
  });
  try {
    await client.connect();
    await client.ping();
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: reason(socketError ?? err) };
  } finally {
    client.disconnect();
  }
}

function uniqueName(): string {
  return `assetpipe_qtest_${process.pid}_${randomBytes(5).toString('hex')}`;
}

/** One backing store per backend kind: how to make a fresh one, and how to delete it. */
interface BackendCase {
  name: 'postgres' | 'redis';
  url: string;
  fresh: (url?: string) => BullmqBackend;
  drop: (backend: BullmqBackend) => Promise<void>;
}

const POSTGRES: BackendCase = {
  name: 'postgres',
  url: DATABASE_URL,
  fresh: (url = DATABASE_URL) => ({ kind: 'postgres', url, schema: uniqueName() }),
  drop: async (backend) => {
    if (backend.kind !== 'postgres') return;
    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    try {
      await client.query(`drop schema if exists "${backend.schema}" cascade`);
    } finally {
      await client.end();
    }
  },
};

const REDIS: BackendCase = {
  name: 'redis',
  url: REDIS_URL,
  fresh: (url = REDIS_URL) => ({ kind: 'redis', url, prefix: uniqueName() }),
  drop: async (backend) => {
    if (backend.kind !== 'redis') return;
    const client = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    try {
      let cursor = '0';
      do {
        const [next, keys] = await client.scan(cursor, 'MATCH', `${backend.prefix}:*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) await client.unlink(...keys);
      } while (cursor !== '0');
    } finally {
      client.disconnect();
    }
  },
};

/**
 * Another worker's stalled checker, as every worker of a fleet runs one: a bare BullMQ worker that
 * claims nothing and moves jobs whose lock expired back to wait. Stands for the workers that can
 * still reach the backend while the one under test is cut off.
 */
async function stalledChecker(backend: BullmqBackend, kind: string): Promise<{ close: () => Promise<void> }> {
  // The adapter's own stall budget: a smaller one would dead-letter the job.
  const options = { autorun: false, stalledInterval: 200, maxStalledCount: 10 };
  const worker =
    backend.kind === 'postgres'
      ? new (withBackend(createPostgresBackend).Worker)(kind, null, {
          ...options,
          connection: { connectionString: backend.url, schema: backend.schema },
        })
      : new Worker(kind, null, {
          ...options,
          connection: { url: backend.url, maxRetriesPerRequest: null },
          prefix: backend.prefix,
        });
  worker.on('error', () => {});
  await worker.waitUntilReady();
  await worker.startStalledCheckTimer();
  return { close: () => worker.close() };
}

function runFixture(args: string[]): ChildProcess {
  return runFixtureScript(FIXTURE, args);
}

/** A TCP proxy in front of a server, to cut the connection (an outage) and restore it. */
interface Proxy {
  port: number;
  /** Closes the listener (new connections are refused) and drops every open connection. */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
  /**
   * A black hole (a partition, a host that vanished): connections stay open and new ones are
   * accepted, but nothing is forwarded in either direction any more.
   */
  freeze(): void;
}

async function tcpProxy(target: { host: string; port: number }): Promise<Proxy> {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  let frozen = false;
  const start = async () => {
    const next = createServer((client) => {
      sockets.add(client);
      if (frozen) {
        client.on('error', () => {}).on('close', () => sockets.delete(client));
        return;
      }
      const upstream = tcpConnect(target.port, target.host);
      sockets.add(upstream);
      const end = () => {
        client.destroy();
        upstream.destroy();
        sockets.delete(client);
        sockets.delete(upstream);
      };
      client.on('error', end).on('close', end);
      upstream.on('error', end).on('close', end);
      client.on('data', (chunk: Buffer) => {
        if (!frozen) upstream.write(chunk);
      });
      upstream.on('data', (chunk: Buffer) => {
        if (!frozen) client.write(chunk);
      });
    });
    await new Promise<void>((resolve, reject) => {
      next.once('error', reject);
      next.listen(port, '127.0.0.1', () => resolve());
    });
    port = (next.address() as AddressInfo).port;
    server = next;
  };
  await start();
  return {
    get port() {
      return port;
    },
    start,
    freeze: () => {
      frozen = true;
    },
    stop: async () => {
      frozen = false;
      const current = server;
      server = undefined;
      if (!current) return;
      const closed = new Promise<void>((resolve) => current.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

function viaProxy(url: string, port: number): string {
  const parsed = new URL(url);
  parsed.hostname = '127.0.0.1';
  parsed.port = String(port);
  return parsed.toString();
}

function targetOf(url: string, defaultPort: number): { host: string; port: number } {
  const parsed = new URL(url);
  return { host: parsed.hostname || '127.0.0.1', port: Number(parsed.port || defaultPort) };
}

function harnessFor(backendCase: BackendCase) {
  return async (options: JobQueueHarnessOptions) => {
    const backend = backendCase.fresh();
    const queues: BullmqJobQueue[] = [];
    const children: ChildProcess[] = [];
    const make = () => {
      const queue = new BullmqJobQueue({ backend, logger: recordingLogger(), ...options });
      queues.push(queue);
      return queue;
    };
    return {
      queue: make() as JobQueue,
      makeSecondQueue: async () => make() as JobQueue,
      startDoomedWorker: (kind: string) =>
        startDoomedFixture(
          FIXTURE,
          ['hang', JSON.stringify(backend), kind, String(options.leaseMs)],
          children,
        ),
      cleanup: async () => {
        await killFixtures(children);
        for (const queue of queues) {
          await queue.stop({ graceMs: 100 });
          await queue.close();
        }
        await backendCase.drop(backend);
      },
    };
  };
}

function specifics(backendCase: BackendCase): void {
  describe(`BullmqJobQueue specifics: ${backendCase.name}`, () => {
    const cleanups: Array<() => Promise<void>> = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });

    function fresh(url?: string): BullmqBackend {
      const backend = backendCase.fresh(url);
      cleanups.push(() => backendCase.drop(backend));
      return backend;
    }

    function open(backend: BullmqBackend, extra: Partial<BullmqJobQueueOptions> = {}): BullmqJobQueue {
      const queue = new BullmqJobQueue({
        backend,
        leaseMs: 5_000,
        maxAttempts: 3,
        backoff: { baseMs: 20, maxMs: 100 },
        logger: recordingLogger(),
        ...extra,
      });
      cleanups.push(async () => {
        await queue.stop({ graceMs: 100 });
        await queue.close();
      });
      return queue;
    }

    it('gives job ids that carry their kind and round-trip through getJob', async () => {
      const queue = open(fresh());
      const plain = await queue.enqueue('media.probe', { a: 1 });
      const nested = await queue.enqueue('nested/kind', { b: 2 });
      const keyed = await queue.enqueue('media.probe', { c: 3 }, { key: 'asset:42/probe' });
      expect(plain.id.startsWith('media.probe/')).toBe(true);
      expect(nested.id.startsWith('nested/kind/')).toBe(true);
      expect(keyed.id.startsWith('media.probe/')).toBe(true);
      expect(await queue.getJob(plain.id)).toMatchObject({ kind: 'media.probe', payload: { a: 1 } });
      expect(await queue.getJob(nested.id)).toMatchObject({ kind: 'nested/kind', payload: { b: 2 } });
      expect(await queue.getJob(keyed.id)).toMatchObject({ kind: 'media.probe', payload: { c: 3 } });
      expect(await queue.getJob('nested/kind/job_00000000000000000000000000')).toBeUndefined();
      expect(await queue.getJob('no-kind-here')).toBeUndefined();
      expect(await queue.getJob('bad:kind/job_1')).toBeUndefined();
      await expect(queue.enqueue('bad:kind', {})).rejects.toThrow(TypeError);
    });

    it('deduplicates concurrent enqueues across instances, and keeps dead jobs deduplicated', async () => {
      const backend = fresh();
      const a = open(backend, { maxAttempts: 1 });
      const b = open(backend, { maxAttempts: 1 });
      const results = await Promise.all(
        [a, b, a, b, a, b, a, b].map((queue, i) => queue.enqueue('race', { i }, { key: 'one' })),
      );
      expect(results.filter((r) => r.created)).toHaveLength(1);
      expect(new Set(results.map((r) => r.id)).size).toBe(1);

      a.work('race', async () => {
        throw new Error('always fails');
      });
      const id = results[0]!.id;
      await waitFor(async () => (await a.getJob(id))?.status === 'dead', 10_000, 'the job to die');
      expect(await b.enqueue('race', { again: true }, { key: 'one' })).toEqual({ id, created: false });
      expect(await b.getJob(id)).toMatchObject({ status: 'dead', lastError: 'always fails', attempt: 1 });
    });

    it('hands the job of a SIGKILLed worker out again within the lease-derived time', async () => {
      const leaseMs = 2_000;
      const backend = fresh();
      const queue = open(backend, { leaseMs });
      const child = runFixture(['hang', JSON.stringify(backend), 'crash', String(leaseMs)]);
      cleanups.push(async () => {
        child.kill('SIGKILL');
        await exited(child);
      });
      await waitForLine(child, 'ready');
      const claimed = waitForLine(child, 'claimed');
      const { id } = await queue.enqueue('crash', {});
      await claimed;
      let startedAt = 0;
      const attempts: number[] = [];
      queue.work('crash', async (_job, ctx) => {
        startedAt = Date.now();
        attempts.push(ctx.attempt);
      });
      await sleep(leaseMs); // held by a live worker: renewed, not handed out
      expect(startedAt).toBe(0);
      const killedAt = Date.now();
      child.kill('SIGKILL');
      await exited(child);
      await waitFor(async () => (await queue.getJob(id))?.status === 'completed', 15_000, 'the job to run');
      // The lock expires at most a lease after the kill; a stalled check runs every half lease and
      // reclaims on the pass after the one that marked the job.
      expect(startedAt - killedAt).toBeLessThanOrEqual(leaseMs + leaseMs + 1_500);
      expect(attempts).toEqual([2]);
      expect(await queue.getJob(id)).toMatchObject({ status: 'completed', attempt: 2 });
    });

    it('claims nothing once stop() was called, even for a job enqueued while it stops', async () => {
      const backend = fresh();
      const queue = open(backend);
      const ran: string[] = [];
      queue.work('idle', async (job) => {
        ran.push(job.id);
      });
      await queue.waitUntilReady();
      await sleep(200); // the worker now waits for jobs
      const stopping = queue.stop({ graceMs: 1_000 });
      const ids = await Promise.all([1, 2, 3].map(async (n) => (await queue.enqueue('idle', { n })).id));
      await stopping;
      await sleep(300);
      expect(ran).toEqual([]);
      for (const id of ids) expect(await queue.getJob(id)).toMatchObject({ status: 'waiting', attempt: 0 });
    });

    it('fails enqueue fast while the backend is down and resumes work without a restart', async () => {
      const target = targetOf(backendCase.url, backendCase.name === 'postgres' ? 5432 : 6379);
      const proxy = await tcpProxy(target);
      cleanups.push(() => proxy.stop());
      const logger = recordingLogger();
      const queue = open(fresh(viaProxy(backendCase.url, proxy.port)), { logger });
      const ran: string[] = [];
      queue.work('outage', async (job) => {
        ran.push(job.id);
      });
      const before = await queue.enqueue('outage', { when: 'before' });
      await waitFor(async () => (await queue.getJob(before.id))?.status === 'completed', 10_000, 'first job');

      await proxy.stop();
      const failingAt = Date.now();
      await expect(queue.enqueue('outage', { when: 'during' })).rejects.toThrow();
      expect(Date.now() - failingAt).toBeLessThan(7_000);
      await sleep(1_500); // workers keep failing meanwhile
      const logLinesDuringOutage = logger.entries.length;

      await proxy.start();
      let after: { id: string } | undefined;
      await waitFor(
        async () => {
          after = await queue.enqueue('outage', { when: 'after' }).catch(() => undefined);
          return after !== undefined;
        },
        20_000,
        'enqueue to work again',
      );
      await waitFor(
        async () => (await queue.getJob(after!.id).catch(() => undefined))?.status === 'completed',
        20_000,
        'the worker to run a job after the outage',
      );
      expect(ran).toContain(after!.id);
      // One line per source and 10 s, not one per failed fetch.
      expect(logLinesDuringOutage).toBeLessThanOrEqual(12);
    });

    it('aborts a handler whose lock went a lease without renewal, and never runs a job twice at once when this worker claims it again', async () => {
      const leaseMs = 1_500;
      const target = targetOf(backendCase.url, backendCase.name === 'postgres' ? 5432 : 6379);
      const proxy = await tcpProxy(target);
      cleanups.push(() => proxy.stop());
      const backend = fresh(viaProxy(backendCase.url, proxy.port));
      const queue = open(backend, { leaseMs });
      // The same store without the proxy: what the rest of the fleet sees during the partition.
      const direct = { ...backend, url: backendCase.url };
      const observer = open(direct, { leaseMs });
      interface Run {
        attempt: number;
        startedAt: number;
        abortedAt?: number;
        endedAt?: number;
      }
      const runs: Run[] = [];
      let letFirstEnd = () => {};
      const firstMayEnd = new Promise<void>((resolve) => {
        letFirstEnd = resolve;
      });
      cleanups.push(async () => letFirstEnd());
      queue.work(
        'fenced',
        async (_job, ctx) => {
          const run: Run = { attempt: ctx.attempt, startedAt: Date.now() };
          runs.push(run);
          ctx.signal.addEventListener('abort', () => {
            run.abortedAt = Date.now();
          });
          // The first run ignores its signal until the test lets it end: a handler slow to react.
          if (runs.length === 1) await firstMayEnd;
          run.endedAt = Date.now();
        },
        // A free slot, so this worker itself can claim the job again.
        { concurrency: 2 },
      );
      const { id } = await queue.enqueue('fenced', {});
      await waitFor(() => runs.length === 1, 10_000, 'the first run');
      // Renewed locks: running for longer than a lease does not abort the handler.
      await sleep(leaseMs * 2);
      expect(runs[0]?.abortedAt).toBeUndefined();

      // The backend goes away: no renewal can succeed, and BullMQ reports no failed renewal either.
      await proxy.stop();
      const downAt = Date.now();
      await waitFor(() => runs[0]?.abortedAt !== undefined, leaseMs * 3, 'the handler to be aborted');
      // The last renewal was sent before the outage; a lease after it the lock is surely gone.
      expect(runs[0]!.abortedAt! - downAt).toBeLessThanOrEqual(leaseMs + 500);
      // Meanwhile a worker that can reach the backend finds the lock expired and hands the job out
      // again (PostgreSQL would otherwise let the old claim renew its expired lock once back).
      const checker = await stalledChecker(direct, 'fenced');
      try {
        await waitFor(
          async () => (await observer.getJob(id))?.status === 'waiting',
          10_000,
          'the job to be moved back to wait',
        );
      } finally {
        await checker.close();
      }

      // Back: this worker's free slot claims the job while the first handler still runs. The
      // claim must hold the job, not run it.
      await proxy.start();
      await waitFor(
        async () => {
          const job = await queue.getJob(id).catch(() => undefined);
          return job?.status === 'active' && job.attempt === 2;
        },
        20_000,
        'the job to be claimed again',
      );
      await sleep(leaseMs * 2);
      expect(runs).toHaveLength(1);
      // Still held by the second claim, whose lock is renewed (another stall would make it 3).
      expect(await queue.getJob(id)).toMatchObject({ status: 'active', attempt: 2 });

      letFirstEnd();
      await waitFor(
        async () => (await queue.getJob(id))?.status === 'completed',
        15_000,
        'the job to complete',
      );
      expect(runs.map((run) => run.attempt)).toEqual([1, 2]);
      expect(runs[1]!.startedAt).toBeGreaterThanOrEqual(runs[0]!.endedAt!);
      expect(runs[1]!.abortedAt).toBeUndefined();
      expect(await queue.getJob(id)).toMatchObject({ status: 'completed', attempt: 2 });
    });

    it('prunes completed and dead jobs once older than their retention, which frees their keys', async () => {
      const queue = open(fresh(), { keepCompletedMs: 1_000, keepDeadMs: 1_000, maxAttempts: 1 });
      queue.work('pruned', async (job) => {
        if ((job.payload as { fail?: boolean }).fail) throw new Error('fails on purpose');
      });
      const finished = async (id: string) =>
        ['completed', 'dead'].includes((await queue.getJob(id))?.status ?? '');
      const completed = await queue.enqueue('pruned', {}, { key: 'completed' });
      const dead = await queue.enqueue('pruned', { fail: true }, { key: 'dead' });
      await waitFor(async () => (await finished(completed.id)) && (await finished(dead.id)), 10_000, 'both');
      expect(await queue.getJob(dead.id)).toMatchObject({ status: 'dead' });
      await sleep(1_200);
      // BullMQ prunes when another job of the kind completes (or dies), not on a timer.
      const later = await queue.enqueue('pruned', {});
      const laterDead = await queue.enqueue('pruned', { fail: true });
      await waitFor(async () => (await finished(later.id)) && (await finished(laterDead.id)), 10_000, 'both');
      expect(await queue.getJob(completed.id)).toBeUndefined();
      expect(await queue.getJob(dead.id)).toBeUndefined();
      expect(await queue.getJob(later.id)).toMatchObject({ status: 'completed' });
      expect(await queue.getJob(laterDead.id)).toMatchObject({ status: 'dead' });
      expect(await queue.counts()).toMatchObject({ pruned: { completed: 1, dead: 1 } });
      const again = await queue.enqueue('pruned', {}, { key: 'completed' });
      expect(again).toEqual({ id: completed.id, created: true });
    });

    it('stop() and close() return in bounded time when the backend stops answering (black hole)', async () => {
      const target = targetOf(backendCase.url, backendCase.name === 'postgres' ? 5432 : 6379);
      const proxy = await tcpProxy(target);
      cleanups.push(() => proxy.stop());
      const closeTimeoutMs = 500;
      const queue = open(fresh(viaProxy(backendCase.url, proxy.port)), { closeTimeoutMs });
      let started = false;
      queue.work('stuck', async () => {
        started = true;
        await new Promise<void>(() => {}); // never settles, ignores its signal
      });
      await queue.enqueue('stuck', {});
      await waitFor(() => started, 10_000, 'the handler to start');
      await queue.counts(); // the queue's own connections are open too

      proxy.freeze();
      const frozenAt = Date.now();
      const closed = (async () => {
        await queue.stop({ graceMs: 200 }); // then the job is given back: a write that never returns
        await queue.close();
        return true;
      })();
      const inTime = await Promise.race([closed, sleep(10_000).then(() => false)]);
      expect(inTime).toBe(true);
      // Grace, giving the job back, closing the workers, then per object: close, then disconnect.
      expect(Date.now() - frozenAt).toBeLessThan(200 + 5 * closeTimeoutMs + 1_500);
    });

    it('starts while the backend is down: calls fail with UNAVAILABLE in time, work starts once it is up', async () => {
      const target = targetOf(backendCase.url, backendCase.name === 'postgres' ? 5432 : 6379);
      const proxy = await tcpProxy(target);
      cleanups.push(() => proxy.stop());
      await proxy.stop(); // the port now refuses connections
      const queue = open(fresh(viaProxy(backendCase.url, proxy.port)), { operationTimeoutMs: 1_000 });
      const ran: string[] = [];
      queue.work('late', async (job) => {
        ran.push(job.id);
      });
      const failingAt = Date.now();
      const failure = await queue.enqueue('late', {}).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(failure).toMatchObject({ code: 'UNAVAILABLE', status: 503 });
      expect(Date.now() - failingAt).toBeLessThan(3_000);
      // Marked as an outage: workers wait it out, the HTTP layer answers 503 with Retry-After.
      expect(isOutage(failure)).toBe(true);
      const countsFailure = await queue.counts().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(countsFailure).toMatchObject({ code: 'UNAVAILABLE' });
      expect(isOutage(countsFailure)).toBe(true);

      await proxy.start();
      let job: { id: string } | undefined;
      await waitFor(
        async () => {
          job = await queue.enqueue('late', {}).catch(() => undefined);
          return job !== undefined;
        },
        20_000,
        'enqueue to work once the backend is up',
      );
      await waitFor(() => ran.includes(job!.id), 20_000, 'the worker to start and run the job');
    });
  });
}

const reachability: Record<BackendCase['name'], Reachability> = {
  postgres: await probePostgres(DATABASE_URL),
  redis: await probeRedis(REDIS_URL),
};

for (const backendCase of [POSTGRES, REDIS]) {
  const reach = reachability[backendCase.name];
  const what = backendCase.name === 'postgres' ? 'PostgreSQL' : 'Redis';
  if (!reach.ok && process.env.CI) {
    describe(`BullmqJobQueue on ${what}`, () => {
      it(`needs ${what}, which is mandatory in CI`, () => {
        expect.fail(`${what} not reachable at ${redact(backendCase.url)}: ${reach.reason}`);
      });
    });
  } else if (!reach.ok) {
    describe.skipIf(true)(`${what} not reachable at ${redact(backendCase.url)}: ${reach.reason}`, () => {
      it(`runs the JobQueue contract on BullMQ/${what}`, () => {});
    });
  } else {
    jobQueueContract(`BullmqJobQueue (${what})`, harnessFor(backendCase));
    specifics(backendCase);
  }
}
