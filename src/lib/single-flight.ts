/**
 * Merges identical concurrent work: while a call for `key` is in flight, further calls for the same
 * key get the same promise instead of starting their own. The entry is dropped once the promise
 * settles (success or failure), so a failure is not remembered and the next call tries again.
 *
 * In-process only: across several API nodes each node may run the work once; callers must make
 * the work's result idempotent (e.g. an atomic blob-store write under a deterministic key).
 */
export class SingleFlight<T> {
  private readonly inFlight = new Map<string, Promise<T>>();

  /**
   * Runs `work` unless a call for `key` is already running, in which case it joins that one.
   * `shared` is true for a caller that joined (a follower), false for the one that started it.
   */
  run(key: string, work: () => Promise<T>): { result: Promise<T>; shared: boolean } {
    const running = this.inFlight.get(key);
    if (running) return { result: running, shared: true };
    // Started lazily inside a promise chain so a synchronous throw in `work` becomes a rejection.
    const result = Promise.resolve()
      .then(work)
      .finally(() => {
        this.inFlight.delete(key);
      });
    this.inFlight.set(key, result);
    return { result, shared: false };
  }

  /** Keys with work in flight right now. */
  get size(): number {
    return this.inFlight.size;
  }
}
