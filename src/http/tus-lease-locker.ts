import { setTimeout as sleep } from 'node:timers/promises';
import { ERRORS, type Lock, type Locker, type RequestRelease } from '@tus/utils';
import type { Catalog } from '../catalog/catalog.js';
import { newId } from '../domain/ids.js';

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
  private readonly settings: Required<Omit<LeaseLockerOptions, 'onRenewError' | 'onReleaseError'>>;

  constructor(
    private readonly catalog: Catalog,
    private readonly options: LeaseLockerOptions = {},
  ) {
    this.settings = {
      leaseMs: options.leaseMs ?? DEFAULTS.leaseMs,
      pollMs: options.pollMs ?? DEFAULTS.pollMs,
      acquireTimeoutMs: options.acquireTimeoutMs ?? DEFAULTS.acquireTimeoutMs,
    };
  }

  newLock(id: string): Lock {
    return new LeaseLock(this.catalog, `tus:${id}`, this.settings, this.options);
  }

  /** Forgets the leases of requests whose node died (they have expired); returns how many. */
  sweepExpired(): Promise<number> {
    return this.catalog.deleteExpiredLeases(new Date().toISOString());
  }
}

const iso = (ms: number) => new Date(ms).toISOString();

class LeaseLock implements Lock {
  /** Unique per request: two requests of one node compete like requests of two nodes. */
  private readonly holder = `${process.pid}:${newId('req')}`;
  private renewing: Promise<void> | undefined;
  private stopRenewing: AbortController | undefined;

  constructor(
    private readonly catalog: Catalog,
    private readonly name: string,
    private readonly settings: Required<Omit<LeaseLockerOptions, 'onRenewError' | 'onReleaseError'>>,
    private readonly hooks: Pick<LeaseLockerOptions, 'onRenewError' | 'onReleaseError'>,
  ) {}

  async lock(stopSignal: AbortSignal, requestRelease: RequestRelease): Promise<void> {
    const { leaseMs, pollMs, acquireTimeoutMs } = this.settings;
    const deadline = Date.now() + acquireTimeoutMs;
    for (;;) {
      // The request went away while it waited (its client disconnected): nothing to lock for.
      if (stopSignal.aborted) throw ERRORS.ERR_LOCK_TIMEOUT;
      const now = Date.now();
      if (await this.catalog.acquireLease(this.name, this.holder, iso(now), iso(now + leaseMs))) break;
      // Asked on every try: a holder that took over meanwhile starts unasked.
      await this.catalog.requestLeaseRelease(this.name);
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
      await this.catalog.releaseLease(this.name, this.holder);
    } catch (err) {
      this.hooks.onReleaseError?.(err, this.name);
    }
  }

  /**
   * Keeps the lease until `unlock`. The request is asked to end when another one wants the upload,
   * when the lease was lost, or when renewals have failed for half a lease (past a full lease,
   * another node may take it: the request must have stopped writing by then).
   */
  private async renew(stop: AbortSignal, requestRelease: RequestRelease): Promise<void> {
    const { leaseMs, pollMs } = this.settings;
    let renewedAt = Date.now();
    let released = false;
    // Not awaited: the request's handler unlocks (and so waits for this loop) once it has ended.
    const release = () => {
      if (released) return;
      released = true;
      Promise.resolve()
        .then(requestRelease)
        .catch(() => {}); // tus only cancels the request's context
    };
    while (!stop.aborted) {
      await sleep(pollMs, undefined, { signal: stop }).catch(() => {});
      if (stop.aborted) return;
      try {
        const now = Date.now();
        const state = await this.catalog.renewLease(this.name, this.holder, iso(now + leaseMs));
        if (state.held) renewedAt = now;
        if (!state.held || state.releaseRequested) release();
      } catch (err) {
        this.hooks.onRenewError?.(err, this.name);
        if (Date.now() - renewedAt > leaseMs / 2) release();
      }
    }
  }
}
