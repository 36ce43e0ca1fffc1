/** A promise and the function that resolves it. */
export function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** A sleep that `cancel()` ends early (resolving, not rejecting). */
export function sleep(ms: number): { promise: Promise<void>; cancel: () => void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
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

/** Resolves to whether `promise` settled (fulfilled or rejected) within `ms`; never rejects. */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const timer = sleep(ms);
  const settled = await Promise.race([
    promise.then(
      () => true,
      () => true,
    ),
    timer.promise.then(() => false),
  ]);
  timer.cancel();
  return settled;
}

/**
 * `promise`, or the error `onTimeout` makes once `ms` have passed. The promise itself goes on; its
 * late rejection is observed here, so it never surfaces as unhandled.
 */
export async function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  promise.catch(() => {});
  const timer = sleep(ms);
  try {
    return await Promise.race([
      promise,
      timer.promise.then(() => {
        throw onTimeout();
      }),
    ]);
  } finally {
    timer.cancel();
  }
}
