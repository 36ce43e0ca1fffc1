import { setTimeout as sleep } from 'node:timers/promises';
import { ERRORS, type Lock, type Locker, type RequestRelease } from '@tus/utils';
import type { Catalog } from '../catalog/catalog.js';
import { newId } from '../domain/ids.js';
import { withTimeout } from '../lib/waiting.js';

export interface LeaseLockerOptions {
  /** How long a lock outlives its last renewal: a killed node's lock frees itself after this. */
  leaseMs?: number;
  /** How often a holder renews (and sees release requests) and a waiter tries again. */
  pollMs?: number;
  /** How long a request waits for a lock another request will not give up. */
  acquireTimeoutMs?: number;
  /** A renewal failed (the database is away); the lock is kept while it can be. */
  onRenewError?: (err: unknown, name: string) => void;
  /** A release failed; the lease expires by itself. */
  onReleaseError?: (err: unknown, name: string) => void;
}

const DEFAULTS = { leaseMs: 15_000, pollMs: 500, acquireTimeoutMs: 30_000 };

/**
 * tus upload locks that hold across API nodes, as leases in the catalog.
 *
 * @tus/server locks an upload for every request on it and asks the holder to let go when another
 * request comes (a client that lost its connection resends while its old PATCH still runs). Its
 * memory locker only sees one process; with uploads in a shared bucket, the client's retry may
 * reach another node, and two PATCHes would then write the same upload at once. Here the waiter
 * marks the lease, the holder sees the mark on its next renewal and ends its request (tus stops
 * reading the body and answers with the offset written), and the waiter takes the lease.
 */
export class LeaseLocker implements Locker {
  private readonly settings: Timing;

  constructor(
    private readonly store: LeaseStore,
    private readonly options: LeaseLockerOptions = {},
  ) {
    this.settings = {
      leaseMs: options.leaseMs ?? DEFAULTS.leaseMs,
      pollMs: options.pollMs ?? DEFAULTS.pollMs,
      acquireTimeoutMs: options.acquireTimeoutMs ?? DEFAULTS.acquireTimeoutMs,
    };
  }

  newLock(id: string): Lock {
    return new LeaseLock(this.store, `tus:${id}`, this.settings, this.options);
  }

  /** Forgets the leases of requests whose node died (they have expired); returns how many. */
  sweepExpired(): Promise<number> {
    return this.store.deleteExpiredLeases(new Date().toISOString());
  }
}

const iso = (ms: number) => new Date(ms).toISOString();
const noAnswer = () => new Error('the catalog did not answer in time');

/** What the locks need from the catalog. */
export type LeaseStore = Pick<
  Catalog,
  'acquireLease' | 'renewLease' | 'requestLeaseRelease' | 'releaseLease' | 'deleteExpiredLeases'
>;

type Timing = Required<Omit<LeaseLockerOptions, 'onRenewError' | 'onReleaseError'>>;

class LeaseLock implements Lock {
  /** Unique per request: two requests of one node compete like requests of two nodes. */
  private readonly holder = `${process.pid}:${newId('req')}`;
  private renewing: Promise<void> | undefined;
  private stopRenewing: AbortController | undefined;

  constructor(
    private readonly store: LeaseStore,
    private readonly name: string,
    private readonly timing: Timing,
    private readonly hooks: Pick<LeaseLockerOptions, 'onRenewError' | 'onReleaseError'>,
  ) {}

  async lock(stopSignal: AbortSignal, requestRelease: RequestRelease): Promise<void> {
    const { leaseMs, pollMs, acquireTimeoutMs } = this.timing;
    const deadline = Date.now() + acquireTimeoutMs;
    for (;;) {
      // The request went away while it waited (its client disconnected): nothing to lock for.
      if (stopSignal.aborted) throw ERRORS.ERR_LOCK_TIMEOUT;
      const now = Date.now();
      if (await this.store.acquireLease(this.name, this.holder, iso(now), iso(now + leaseMs))) break;
      // Asked on every try: a holder that took over meanwhile starts unasked.
      await this.store.requestLeaseRelease(this.name);
      if (Date.now() >= deadline) throw ERRORS.ERR_LOCK_TIMEOUT;
      await sleep(pollMs, undefined, { signal: stopSignal }).catch(() => {});
    }
    const stop = new AbortController();
    this.stopRenewing = stop;
    this.renewing = this.renew(stop.signal, requestRelease);
  }

  async unlock(): Promise<void> {
    this.stopRenewing?.abort();
    await this.renewing;
    try {
      // Bounded: with the catalog away the lease expires by itself, and the request must not hang.
      await withTimeout(this.store.releaseLease(this.name, this.holder), this.timing.leaseMs / 6, noAnswer);
    } catch (err) {
      this.hooks.onReleaseError?.(err, this.name);
    }
  }

  /**
   * Keeps the lease until `unlock`. The request is asked to end when another one wants the upload,
   * when the lease was lost, or when no renewal has succeeded for a quarter of a lease: tus then
   * drains the request for up to 3 s (`lockDrainTimeout`) and the store writes its last part, all
   * before the lease can expire and another node may take the upload.
   */
  private async renew(stop: AbortSignal, requestRelease: RequestRelease): Promise<void> {
    const { leaseMs, pollMs } = this.timing;
    let released = false;
    // Not awaited: the request's handler unlocks (and so waits for this loop) once it has ended.
    const release = () => {
      if (released) return;
      released = true;
      Promise.resolve()
        .then(requestRelease)
        .catch(() => {}); // tus only cancels the request's context
    };
    // A watchdog rather than a check after each renewal: a renewal may hang on a dead connection.
    let watchdog = setTimeout(release, leaseMs / 4);
    try {
      while (!stop.aborted) {
        await sleep(pollMs, undefined, { signal: stop }).catch(() => {});
        if (stop.aborted) return;
        try {
          const state = await withTimeout(
            this.store.renewLease(this.name, this.holder, iso(Date.now() + leaseMs)),
            leaseMs / 6,
            noAnswer,
          );
          if (state.held && !released) {
            clearTimeout(watchdog);
            watchdog = setTimeout(release, leaseMs / 4);
          }
          if (!state.held || state.releaseRequested) release();
        } catch (err) {
          this.hooks.onRenewError?.(err, this.name);
        }
      }
    } finally {
      clearTimeout(watchdog);
    }
  }
}
