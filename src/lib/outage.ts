/**
 * Tells a dependency outage (the database, Redis or the object store cannot be reached right now)
 * from every other error. An outage is worth waiting out: API calls answer 503 with Retry-After
 * instead of 500, and workers retry the same attempt instead of spending one, so a restart of
 * PostgreSQL never fails an asset.
 */

/**
 * Socket-level failures: the peer is down, restarting or unreachable. Not ENOTFOUND: a host name
 * that does not resolve is a configuration mistake far more often than an outage, and waiting it
 * out would hide it.
 */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/**
 * PostgreSQL SQLSTATEs of a server that is going away, not accepting connections yet, or full:
 * connection exceptions (08000, 08001, 08003, 08004, 08006; not 08P01, a protocol violation, which
 * is a bug), 57P01..57P03 (admin/crash shutdown, cannot connect now) and 53300 (too many
 * connections: a fleet briefly over `max_connections` waits, it does not fail).
 */
const POSTGRES_OUTAGE_STATES = new Set([
  '08000',
  '08001',
  '08003',
  '08004',
  '08006',
  '57P01',
  '57P02',
  '57P03',
  '53300',
]);

/** Messages of node-postgres, ioredis and the AWS SDK that carry no code. */
const OUTAGE_MESSAGES = [
  /^Connection terminated/i,
  /timeout exceeded when trying to connect/i,
  /Client has encountered a connection error/i,
  /Connection is closed/i,
  /the database system is (starting up|shutting down|in recovery mode)/i,
  /terminating connection due to administrator command/i,
  /Cannot use a pool after calling end/i,
  // node-postgres's client-side query_timeout: the server stopped answering mid-query.
  /Query read timeout/i,
  // ioredis gave up on a command while it reconnects (MaxRetriesPerRequestError).
  /Reached the max retries per request limit/i,
];

const OUTAGE = Symbol.for('assetpipe.outage');

/**
 * Marks an error an adapter made itself for an unreachable dependency (a timeout with no socket
 * error to show for it, an S3 503 SlowDown), so that `isOutage` treats it as one.
 */
export function asOutage<E extends Error>(err: E): E {
  Object.defineProperty(err, OUTAGE, { value: true, enumerable: false });
  return err;
}

export function isOutage(err: unknown): boolean {
  const seen = new Set<unknown>();
  let current: unknown = err;
  // Wrapped errors (AppError, AggregateError, the AWS SDK) keep the original in `cause`.
  while (current !== null && typeof current === 'object' && !seen.has(current)) {
    seen.add(current);
    if ((current as { [OUTAGE]?: unknown })[OUTAGE] === true) return true;
    const e = current as {
      code?: unknown;
      message?: unknown;
      cause?: unknown;
      errors?: unknown;
      name?: unknown;
    };
    if (typeof e.code === 'string') {
      if (NETWORK_CODES.has(e.code)) return true;
      if (POSTGRES_OUTAGE_STATES.has(e.code)) return true;
    }
    if (typeof e.message === 'string' && OUTAGE_MESSAGES.some((re) => re.test(e.message as string)))
      return true;
    if (Array.isArray(e.errors) && e.errors.some((inner) => isOutage(inner))) return true;
    current = e.cause;
  }
  return false;
}
