export interface BackoffPolicy {
  /** Delay before the first retry, in ms. @default 1000 */
  baseMs: number;
  /** Upper bound of any delay, in ms. @default 300000 */
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 1000, maxMs: 300_000 };

/**
 * Delay before retrying after failed attempt number `attempt` (1-based): exponential growth with
 * "equal jitter" (half fixed, half random), so retries of jobs that failed together spread out
 * while each still waits at least half the nominal delay.
 */
export function backoffDelay(
  attempt: number,
  policy: BackoffPolicy = DEFAULT_BACKOFF,
  random = Math.random,
): number {
  const exponent = Math.max(0, attempt - 1);
  const nominal = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(exponent, 30));
  const half = nominal / 2;
  return Math.round(half + random() * half);
}
