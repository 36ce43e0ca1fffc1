import { setTimeout as sleep } from 'node:timers/promises';
import { ERRORS } from '@tus/utils';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { KyselyCatalog } from '../../src/catalog/kysely-catalog.js';
import { openSqliteCatalog } from '../../src/catalog/sqlite-catalog.js';
import { LeaseLocker, type LeaseStore } from '../../src/http/tus-lease-locker.js';

// Two LeaseLockers on one catalog stand for two API nodes: a request on one node must wait for,
// and ask for, an upload lock a request on the other node holds.

const FAST = { leaseMs: 1_000, pollMs: 50, acquireTimeoutMs: 5_000 };

describe('tus upload locks shared through the catalog', () => {
  let catalog: KyselyCatalog;

  beforeEach(async () => {
    catalog = await openSqliteCatalog(':memory:');
    await catalog.migrate();
  });

  afterEach(async () => {
    await catalog.close();
  });

  it('a request on another node waits, the holder is asked to let go, then the waiter holds it', async () => {
    const nodeA = new LeaseLocker(catalog, FAST);
    const nodeB = new LeaseLocker(catalog, FAST);
    const events: string[] = [];
    const held = nodeA.newLock('upl_1');
    // tus's release callback cancels the request; the handler then ends and unlocks.
    await held.lock(new AbortController().signal, async () => {
      events.push('A asked to release');
      await sleep(100);
      events.push('A unlocks');
      await held.unlock();
    });
    const waiter = nodeB.newLock('upl_1');
    await waiter.lock(new AbortController().signal, () => {});
    events.push('B holds');
    expect(events).toEqual(['A asked to release', 'A unlocks', 'B holds']);

    // Another upload is another lock: no waiting, nobody asked.
    const other = nodeA.newLock('upl_2');
    await other.lock(new AbortController().signal, () => {
      events.push('unexpected');
    });
    await other.unlock();
    await waiter.unlock();
    expect(events).toHaveLength(3);
  });

  it('gives up with tus’s lock timeout when the holder does not let go, and the holder keeps it', async () => {
    const holder = new LeaseLocker(catalog, FAST).newLock('upl_1');
    let asked = 0;
    await holder.lock(new AbortController().signal, () => {
      asked++;
    });
    const impatient = new LeaseLocker(catalog, { ...FAST, acquireTimeoutMs: 400 }).newLock('upl_1');
    await expect(impatient.lock(new AbortController().signal, () => {})).rejects.toBe(
      ERRORS.ERR_LOCK_TIMEOUT,
    );
    expect(asked).toBe(1);
    // Renewals kept it past its lease: a third request still cannot have it.
    await sleep(FAST.leaseMs + 200);
    const third = new LeaseLocker(catalog, { ...FAST, acquireTimeoutMs: 200 }).newLock('upl_1');
    await expect(third.lock(new AbortController().signal, () => {})).rejects.toBe(ERRORS.ERR_LOCK_TIMEOUT);
    await holder.unlock();
  });

  it('the lock of a node that died frees itself once its lease expires', async () => {
    const now = Date.now();
    // What a killed node leaves behind: a lease nobody renews.
    expect(
      await catalog.acquireLease(
        'tus:upl_1',
        'dead-node',
        new Date(now).toISOString(),
        new Date(now + 500).toISOString(),
      ),
    ).toBe(true);
    const lock = new LeaseLocker(catalog, FAST).newLock('upl_1');
    await lock.lock(new AbortController().signal, () => {});
    expect(Date.now() - now).toBeGreaterThan(500);
    await lock.unlock();
    expect(await new LeaseLocker(catalog, FAST).sweepExpired()).toBe(0);
  });

  it('stops waiting when its request goes away', async () => {
    const holder = new LeaseLocker(catalog, FAST).newLock('upl_1');
    await holder.lock(new AbortController().signal, () => {});
    const gone = new AbortController();
    const waiting = new LeaseLocker(catalog, FAST).newLock('upl_1').lock(gone.signal, () => {});
    setTimeout(() => gone.abort(), 150);
    await expect(waiting).rejects.toBe(ERRORS.ERR_LOCK_TIMEOUT);
    await holder.unlock();
  });

  it('asks its request to stop when renewals hang (the database is away), long before the lease ends', async () => {
    let hang = false;
    // The catalog, except that renewals stop answering once `hang` is set (a dead connection).
    const store: LeaseStore = {
      acquireLease: (...args) => catalog.acquireLease(...args),
      renewLease: (...args) => (hang ? new Promise(() => {}) : catalog.renewLease(...args)),
      requestLeaseRelease: (...args) => catalog.requestLeaseRelease(...args),
      releaseLease: (...args) => (hang ? new Promise(() => {}) : catalog.releaseLease(...args)),
      deleteExpiredLeases: (...args) => catalog.deleteExpiredLeases(...args),
    };
    const renewErrors: unknown[] = [];
    const releaseErrors: unknown[] = [];
    const lock = new LeaseLocker(store, {
      ...FAST,
      onRenewError: (err) => renewErrors.push(err),
      onReleaseError: (err) => releaseErrors.push(err),
    }).newLock('upl_1');
    let askedAt: number | undefined;
    await lock.lock(new AbortController().signal, () => {
      askedAt = Date.now();
    });
    await sleep(FAST.pollMs * 3);
    expect(askedAt).toBeUndefined(); // renewed while the catalog answered
    hang = true;
    const hungAt = Date.now();
    await sleep(FAST.leaseMs / 2);
    // Asked within a quarter lease of the last renewal, with time to drain before the lease ends.
    expect(askedAt).toBeDefined();
    expect((askedAt ?? 0) - hungAt).toBeLessThan(FAST.leaseMs / 2);
    expect(renewErrors.length).toBeGreaterThan(0);
    // unlock does not wait for an answer that never comes.
    const unlockStarted = Date.now();
    await lock.unlock();
    expect(Date.now() - unlockStarted).toBeLessThan(FAST.leaseMs);
    expect(releaseErrors).toHaveLength(1);
  });

  it('asks its own request to stop once the lease was taken from it', async () => {
    const lock = new LeaseLocker(catalog, FAST).newLock('upl_1');
    let asked = false;
    await lock.lock(new AbortController().signal, () => {
      asked = true;
    });
    // Its lease expired and another node took it (this node was frozen past its lease).
    const taken = await catalog.acquireLease(
      'tus:upl_1',
      'other-node',
      new Date(Date.now() + 60_000).toISOString(),
      new Date(Date.now() + 75_000).toISOString(),
    );
    expect(taken).toBe(true);
    await sleep(FAST.pollMs * 4);
    expect(asked).toBe(true);
    await lock.unlock();
    // Its unlock does not free the other node's lease.
    expect(
      await catalog.renewLease('tus:upl_1', 'other-node', new Date(Date.now() + 80_000).toISOString()),
    ).toEqual({
      held: true,
      releaseRequested: false,
    });
  });
});
