import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import type { BackoffPolicy } from '../../src/queue/backoff.js';
import type { JobQueue, JobRecord, JobStatus } from '../../src/queue/job-queue.js';

export interface JobQueueHarnessOptions {
  leaseMs: number;
  maxAttempts: number;
  backoff: BackoffPolicy;
}

export interface JobQueueHarness {
  /** A queue on a fresh, empty backing store, configured with the given options. */
  queue: JobQueue;
  /** Stops and closes every queue and worker the harness made, then deletes the backing store. */
  cleanup: () => Promise<void>;
  /** Another instance on the same backing store, with the same options: "another worker process". */
  makeSecondQueue: () => Promise<JobQueue>;
  /**
   * Starts a worker for `kind` in another OS process, on the same backing store and options, whose
   * handler never settles and ignores its signal. Resolves once that worker is polling. `kill`
   * ends the process abruptly (SIGKILL: no shutdown, no more heartbeats) and resolves once it has
   * exited.
   */
  startDoomedWorker: (kind: string) => Promise<{ kill: () => Promise<void> }>;
}

export type MakeJobQueue = (options: JobQueueHarnessOptions) => Promise<JobQueueHarness>;

const DEFAULTS: JobQueueHarnessOptions = {
  leaseMs: 5_000,
  maxAttempts: 3,
  backoff: { baseMs: 20, maxMs: 100 },
};

/** Polls `predicate` every 20 ms until it holds; fails after `timeoutMs`. */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

interface Gate {
  promise: Promise<void>;
  open: () => void;
}

function gate(): Gate {
  let open = () => {};
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

async function statusOf(queue: JobQueue, id: string): Promise<JobStatus | undefined> {
  return (await queue.getJob(id))?.status;
}

async function mustGet<P>(queue: JobQueue, id: string): Promise<JobRecord<P>> {
  const job = await queue.getJob<P>(id);
  if (!job) throw new Error(`job ${id} not found`);
  return job;
}

function untilStatus(queue: JobQueue, id: string, status: JobStatus, timeoutMs = 10_000): Promise<void> {
  return waitFor(async () => (await statusOf(queue, id)) === status, timeoutMs, `job ${id} to be ${status}`);
}

/**
 * Registers the `JobQueue` contract suite for one adapter. Everything goes through the port and
 * the harness only, so any adapter (SQLite today, BullMQ later) runs it unchanged.
 */
export function jobQueueContract(name: string, makeQueue: MakeJobQueue): void {
  describe(`JobQueue contract: ${name}`, () => {
    const cleanups: Array<() => Promise<void>> = [];
    const gates: Gate[] = [];

    afterEach(async () => {
      for (const g of gates.splice(0)) g.open();
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });

    async function setup(overrides: Partial<JobQueueHarnessOptions> = {}): Promise<JobQueueHarness> {
      const harness = await makeQueue({ ...DEFAULTS, ...overrides });
      cleanups.push(harness.cleanup);
      return harness;
    }

    function newGate(): Gate {
      const g = gate();
      gates.push(g);
      return g;
    }

    it('runs the handler once with the payload and marks the job completed', async () => {
      const { queue } = await setup();
      const payload = { n: 7, nested: { s: 'x', list: [1, 2] } };
      const seen: Array<{
        id: string;
        payload: unknown;
        attempt: number;
        ctxAttempt: number;
        status: string;
      }> = [];
      queue.work<typeof payload>('plain', async (job, ctx) => {
        seen.push({
          id: job.id,
          payload: job.payload,
          attempt: job.attempt,
          ctxAttempt: ctx.attempt,
          status: job.status,
        });
      });
      const { id, created } = await queue.enqueue('plain', payload);
      expect(created).toBe(true);
      await untilStatus(queue, id, 'completed');
      await sleep(300); // a duplicate delivery would show up here
      expect(seen).toEqual([{ id, payload, attempt: 1, ctxAttempt: 1, status: 'active' }]);
      const job = await mustGet(queue, id);
      expect(job).toMatchObject({
        id,
        kind: 'plain',
        payload,
        status: 'completed',
        attempt: 1,
        maxAttempts: 3,
        lastError: null,
      });
      expect(job.createdAt).toBeInstanceOf(Date);
      expect(job.finishedAt).toBeInstanceOf(Date);
      expect(job.finishedAt!.getTime()).toBeGreaterThanOrEqual(job.createdAt.getTime());
    });

    it('reports a new job as waiting with attempt 0, and unknown ids as undefined', async () => {
      const { queue } = await setup();
      const { id } = await queue.enqueue('idle', { a: 1 }, { maxAttempts: 7 });
      const job = await mustGet(queue, id);
      expect(job).toMatchObject({
        status: 'waiting',
        attempt: 0,
        maxAttempts: 7,
        progress: 0,
        lastError: null,
      });
      expect(job.finishedAt).toBeNull();
      expect(await queue.getJob('job_00000000000000000000000000')).toBeUndefined();
    });

    it('deduplicates by key in any state, across instances, and runs the job once', async () => {
      const harness = await setup();
      const { queue } = harness;
      const other = await harness.makeSecondQueue();
      const first = await queue.enqueue('dedupe', { v: 1 }, { key: 'same' });
      const again = await queue.enqueue('dedupe', { v: 2 }, { key: 'same' });
      const fromOther = await other.enqueue('dedupe', { v: 3 }, { key: 'same' });
      const distinct = await queue.enqueue('dedupe', { v: 4 }, { key: 'different' });
      expect(first.created).toBe(true);
      expect(again).toEqual({ id: first.id, created: false });
      expect(fromOther).toEqual({ id: first.id, created: false });
      expect(distinct.created).toBe(true);
      expect(distinct.id).not.toBe(first.id);

      const runs: number[] = [];
      queue.work<{ v: number }>('dedupe', async (job) => {
        runs.push(job.payload.v);
      });
      await untilStatus(queue, first.id, 'completed');
      await untilStatus(queue, distinct.id, 'completed');
      const afterCompletion = await queue.enqueue('dedupe', { v: 5 }, { key: 'same' });
      expect(afterCompletion).toEqual({ id: first.id, created: false });
      await sleep(300);
      expect(runs.sort()).toEqual([1, 4]);
      expect((await mustGet(queue, first.id)).payload).toEqual({ v: 1 });
    });

    it('retries a throwing handler with an increasing attempt number until it succeeds', async () => {
      const { queue } = await setup({ maxAttempts: 4, backoff: { baseMs: 20, maxMs: 100 } });
      const attempts: Array<[number, number]> = [];
      queue.work('flaky', async (job, ctx) => {
        attempts.push([job.attempt, ctx.attempt]);
        if (ctx.attempt < 3) throw new Error(`fail #${ctx.attempt}`);
      });
      const { id } = await queue.enqueue('flaky', {});
      await untilStatus(queue, id, 'completed');
      await sleep(200);
      expect(attempts).toEqual([
        [1, 1],
        [2, 2],
        [3, 3],
      ]);
      expect(await mustGet(queue, id)).toMatchObject({
        status: 'completed',
        attempt: 3,
        lastError: 'fail #2',
      });
    });

    it('dead-letters a job after maxAttempts with its last error, listed newest first', async () => {
      const { queue } = await setup({ maxAttempts: 2 });
      const calls: string[] = [];
      queue.work<{ name: string }>('doomed-job', async (job, ctx) => {
        calls.push(`${job.payload.name}#${ctx.attempt}`);
        throw new Error(`nope ${job.payload.name} ${ctx.attempt}`);
      });
      const older = await queue.enqueue('doomed-job', { name: 'older' });
      await untilStatus(queue, older.id, 'dead');
      const newer = await queue.enqueue('doomed-job', { name: 'newer' });
      await untilStatus(queue, newer.id, 'dead');
      const okJob = await queue.enqueue('fine', {});
      queue.work('fine', async () => {});
      await untilStatus(queue, okJob.id, 'completed');
      await sleep(300); // no further attempts after death
      expect(calls).toEqual(['older#1', 'older#2', 'newer#1', 'newer#2']);

      const dead = await mustGet(queue, older.id);
      expect(dead).toMatchObject({ status: 'dead', attempt: 2, maxAttempts: 2, lastError: 'nope older 2' });
      expect(dead.finishedAt).toBeInstanceOf(Date);

      expect((await queue.listDead()).map((j) => j.id)).toEqual([newer.id, older.id]);
      expect((await queue.listDead('doomed-job')).map((j) => j.id)).toEqual([newer.id, older.id]);
      expect((await queue.listDead('doomed-job', 1)).map((j) => j.id)).toEqual([newer.id]);
      expect(await queue.listDead('fine')).toEqual([]);
      const [listed] = await queue.listDead('doomed-job', 1);
      expect(listed).toMatchObject({ kind: 'doomed-job', status: 'dead', lastError: 'nope newer 2' });
    });

    it('waits at least about the backoff delay before the next attempt', async () => {
      // backoffDelay(1) with baseMs 600 is between 300 and 600 ms (equal jitter).
      const { queue } = await setup({ maxAttempts: 2, backoff: { baseMs: 600, maxMs: 600 } });
      const starts: number[] = [];
      let failedAt = 0;
      queue.work('backoff', async (_job, ctx) => {
        starts.push(Date.now());
        if (ctx.attempt === 1) {
          failedAt = Date.now();
          throw new Error('first attempt fails');
        }
      });
      const { id } = await queue.enqueue('backoff', {});
      await waitFor(
        async () => {
          const job = await queue.getJob(id);
          return job?.status === 'delayed' && job.lastError === 'first attempt fails';
        },
        10_000,
        'the failed job to wait for its retry',
      );
      const pending = await mustGet(queue, id);
      expect(pending.attempt).toBe(1);
      expect(pending.runAt.getTime()).toBeGreaterThanOrEqual(failedAt + 290);
      await untilStatus(queue, id, 'completed');
      expect(starts).toHaveLength(2);
      expect(starts[1]! - failedAt).toBeGreaterThanOrEqual(290);
    });

    it('does not run a delayed job before its delay, and does not hold back later jobs', async () => {
      const { queue } = await setup();
      const ran: Array<{ name: string; at: number }> = [];
      const enqueuedAt = Date.now();
      const late = await queue.enqueue('timed', { name: 'late' }, { delayMs: 700 });
      const early = await queue.enqueue('timed', { name: 'early' });
      const pending = await mustGet(queue, late.id);
      expect(pending.status).toBe('delayed');
      expect(pending.runAt.getTime()).toBeGreaterThanOrEqual(enqueuedAt + 690);
      queue.work<{ name: string }>('timed', async (job) => {
        ran.push({ name: job.payload.name, at: Date.now() });
      });
      await untilStatus(queue, early.id, 'completed');
      expect(await statusOf(queue, late.id)).toBe('delayed');
      await untilStatus(queue, late.id, 'completed');
      expect(ran.map((r) => r.name)).toEqual(['early', 'late']);
      expect(ran[1]!.at - enqueuedAt).toBeGreaterThanOrEqual(690);
    });

    it('honours per-kind concurrency without blocking other kinds', async () => {
      const { queue } = await setup();
      let running = 0;
      let maxRunning = 0;
      let slowDone = 0;
      const slow = [];
      for (let i = 0; i < 6; i++) slow.push((await queue.enqueue('slow', { i })).id);
      queue.work(
        'slow',
        async () => {
          running++;
          maxRunning = Math.max(maxRunning, running);
          await sleep(200);
          running--;
          slowDone++;
        },
        { concurrency: 2 },
      );
      let slowDoneWhenOtherRan = -1;
      queue.work('quick', async () => {
        slowDoneWhenOtherRan = slowDone;
      });
      await waitFor(() => running === 2, 10_000, 'two slow jobs to run');
      const quick = await queue.enqueue('quick', {});
      await untilStatus(queue, quick.id, 'completed');
      for (const id of slow) await untilStatus(queue, id, 'completed');
      expect(maxRunning).toBe(2);
      expect(slowDone).toBe(6);
      expect(slowDoneWhenOtherRan).toBeGreaterThanOrEqual(0);
      expect(slowDoneWhenOtherRan).toBeLessThan(6);
    });

    it('shares jobs between two instances: every job runs exactly once, never concurrently', async () => {
      const harness = await setup();
      const { queue } = harness;
      const second = await harness.makeSecondQueue();
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) ids.push((await queue.enqueue('shared', { i })).id);
      const runs = new Map<string, number>();
      const running = new Set<string>();
      const overlaps: string[] = [];
      const byInstance = { first: 0, second: 0 };
      const handler = (instance: keyof typeof byInstance) => async (job: JobRecord) => {
        if (running.has(job.id)) overlaps.push(job.id);
        running.add(job.id);
        runs.set(job.id, (runs.get(job.id) ?? 0) + 1);
        byInstance[instance]++;
        await sleep(50);
        running.delete(job.id);
      };
      queue.work('shared', handler('first'), { concurrency: 2 });
      second.work('shared', handler('second'), { concurrency: 2 });
      await waitFor(
        async () => (await queue.counts()).shared?.completed === 20,
        20_000,
        'all 20 shared jobs to complete',
      );
      await sleep(300);
      expect(overlaps).toEqual([]);
      expect([...runs.keys()].sort()).toEqual([...ids].sort());
      expect([...runs.values()].every((n) => n === 1)).toBe(true);
      expect(byInstance.first).toBeGreaterThan(0);
      expect(byInstance.second).toBeGreaterThan(0);
      for (const id of ids) expect((await mustGet(queue, id)).attempt).toBe(1);
    });

    it('keeps a live worker’s lease and hands the job out again once its worker dies', async () => {
      const leaseMs = 1_500;
      const harness = await setup({ leaseMs, maxAttempts: 3 });
      const { queue } = harness;
      const doomed = await harness.startDoomedWorker('orphan');
      const { id } = await queue.enqueue('orphan', { important: true });
      await waitFor(
        async () => {
          const job = await queue.getJob(id);
          return job?.status === 'active' && job.attempt === 1;
        },
        10_000,
        'the doomed worker to claim the job',
      );

      const survivorAttempts: number[] = [];
      queue.work('orphan', async (_job, ctx) => {
        survivorAttempts.push(ctx.attempt);
      });
      // The doomed worker is alive and heartbeating: its job must not be taken over.
      await sleep(leaseMs * 1.5);
      expect(survivorAttempts).toEqual([]);
      expect(await mustGet(queue, id)).toMatchObject({ status: 'active', attempt: 1 });

      await doomed.kill();
      await untilStatus(queue, id, 'completed', 15_000);
      expect(survivorAttempts).toEqual([2]);
      expect(await mustGet(queue, id)).toMatchObject({ status: 'completed', attempt: 2 });
    });

    it('stop() lets an in-flight job finish within the grace period and takes no new jobs', async () => {
      const harness = await setup();
      const { queue } = harness;
      const calls: number[] = [];
      let abortedDuringRun: boolean | undefined;
      queue.work<{ n: number }>('graceful', async (job, ctx) => {
        calls.push(job.payload.n);
        await sleep(400);
        abortedDuringRun = ctx.signal.aborted;
      });
      const a = await queue.enqueue('graceful', { n: 1 });
      const b = await queue.enqueue('graceful', { n: 2 });
      await waitFor(() => calls.length === 1, 10_000, 'the first job to start');
      const stopping = queue.stop({ graceMs: 10_000 });
      const c = await queue.enqueue('graceful', { n: 3 });
      await stopping;
      expect(await mustGet(queue, a.id)).toMatchObject({ status: 'completed', attempt: 1 });
      expect(abortedDuringRun).toBe(false);
      await sleep(400);
      expect(calls).toEqual([1]);
      expect(await mustGet(queue, b.id)).toMatchObject({ status: 'waiting', attempt: 0 });
      expect(await mustGet(queue, c.id)).toMatchObject({ status: 'waiting', attempt: 0 });

      const second = await harness.makeSecondQueue();
      second.work('graceful', async () => {});
      await untilStatus(queue, b.id, 'completed');
      await untilStatus(queue, c.id, 'completed');
    });

    it('stop() past the grace period aborts the handler and releases the job without spending an attempt', async () => {
      const harness = await setup();
      const { queue } = harness;
      let started = 0;
      let abortReason: unknown;
      queue.work('stuck', (_job, ctx) => {
        started++;
        // Resolves (as if it finished) once aborted: the queue must ignore that late result.
        return new Promise<void>((resolve) => {
          ctx.signal.addEventListener('abort', () => {
            abortReason = ctx.signal.reason ?? 'aborted';
            resolve();
          });
        });
      });
      const { id } = await queue.enqueue('stuck', { x: 1 });
      await waitFor(() => started === 1, 10_000, 'the stuck job to start');
      const stopStartedAt = Date.now();
      await queue.stop({ graceMs: 300 });
      expect(Date.now() - stopStartedAt).toBeGreaterThanOrEqual(290);
      expect(abortReason).toBeDefined();
      await sleep(100);
      expect(await mustGet(queue, id)).toMatchObject({ status: 'waiting', attempt: 0 });

      const second = await harness.makeSecondQueue();
      const attempts: number[] = [];
      second.work('stuck', async (_job, ctx) => {
        attempts.push(ctx.attempt);
      });
      await untilStatus(second, id, 'completed');
      expect(attempts).toEqual([1]);
      expect(started).toBe(1);
      expect(await mustGet(second, id)).toMatchObject({ status: 'completed', attempt: 1 });
    });

    it('makes progress readable through getJob', async () => {
      const { queue } = await setup();
      const step = newGate();
      const burst = newGate();
      const finish = newGate();
      queue.work('progress', async (_job, ctx) => {
        await ctx.progress(42);
        await step.promise;
        // Two quick reports: an adapter may coalesce them, but the last one must land.
        await ctx.progress(55);
        await ctx.progress(60);
        await burst.promise;
        for (let p = 61; p < 100; p++) await ctx.progress(p);
        await ctx.progress(100);
        await finish.promise;
      });
      const { id } = await queue.enqueue('progress', {});
      expect((await mustGet(queue, id)).progress).toBe(0);
      await waitFor(async () => (await queue.getJob(id))?.progress === 42, 10_000, 'progress 42');
      step.open();
      await waitFor(async () => (await queue.getJob(id))?.progress === 60, 10_000, 'progress 60');
      burst.open();
      await waitFor(async () => (await queue.getJob(id))?.progress === 100, 10_000, 'progress 100');
      expect(await statusOf(queue, id)).toBe('active');
      finish.open();
      await untilStatus(queue, id, 'completed');
      expect((await mustGet(queue, id)).progress).toBe(100);
    });

    it('counts jobs per kind and status', async () => {
      const { queue } = await setup({ maxAttempts: 1 });
      const hold = newGate();
      queue.work<{ mode: string }>('census', async (job) => {
        if (job.payload.mode === 'fail') throw new Error('failed on purpose');
        if (job.payload.mode === 'hold') await hold.promise;
      });
      const ok = await queue.enqueue('census', { mode: 'ok' });
      const failed = await queue.enqueue('census', { mode: 'fail' });
      await untilStatus(queue, ok.id, 'completed');
      await untilStatus(queue, failed.id, 'dead');
      const held = await queue.enqueue('census', { mode: 'hold' });
      await untilStatus(queue, held.id, 'active');
      const waiting = await queue.enqueue('census', { mode: 'ok' }); // concurrency 1: stays waiting
      await queue.enqueue('census', { mode: 'ok' }, { delayMs: 60_000 });
      await queue.enqueue('unworked', {});

      expect(await queue.counts()).toEqual({
        census: { waiting: 1, delayed: 1, active: 1, completed: 1, dead: 1 },
        unworked: { waiting: 1, delayed: 0, active: 0, completed: 0, dead: 0 },
      });

      hold.open();
      await untilStatus(queue, waiting.id, 'completed');
      expect((await queue.counts()).census).toEqual({
        waiting: 0,
        delayed: 1,
        active: 0,
        completed: 3,
        dead: 1,
      });
    });

    it('handles handlers that throw non-Error values and keeps working', async () => {
      const { queue } = await setup({ maxAttempts: 1 });
      queue.work<{ throws: string }>('odd', async (job) => {
        switch (job.payload.throws) {
          case 'string':
            throw 'plain string failure';
          case 'object':
            throw { code: 42 };
          case 'undefined':
            throw undefined;
          case 'null':
            throw null;
        }
      });
      const ids: Record<string, string> = {};
      for (const throws of ['string', 'object', 'undefined', 'null', 'nothing']) {
        ids[throws] = (await queue.enqueue('odd', { throws })).id;
      }
      for (const throws of ['string', 'object', 'undefined', 'null'])
        await untilStatus(queue, ids[throws]!, 'dead');
      await untilStatus(queue, ids.nothing!, 'completed');
      expect((await mustGet(queue, ids.string!)).lastError).toContain('plain string failure');
      for (const throws of ['object', 'undefined', 'null']) {
        const { lastError } = await mustGet(queue, ids[throws]!);
        expect(typeof lastError).toBe('string');
        expect(lastError).not.toBe('');
      }
    });

    it('refuses a second worker for the same kind on one instance', async () => {
      const { queue } = await setup();
      queue.work('once', async () => {});
      expect(() => queue.work('once', async () => {})).toThrow();
      queue.work('another-kind', async () => {});
    });
  });
}
