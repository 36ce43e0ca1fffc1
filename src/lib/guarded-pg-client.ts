import pg from 'pg';

/**
 * A node-postgres client that never crashes the process when its connection dies.
 *
 * pg-pool listens for `error` only on idle clients. A client that is checked out but between two
 * queries (inside a transaction, during BullMQ's start-up check) has no listener, so PostgreSQL
 * terminating the session (a restart: 57P01) makes it emit an unhandled `error`, which kills the
 * process. The error is not lost by swallowing it here: the client is no longer queryable, so its
 * next query rejects with an outage error the caller handles, and the pool discards it on release.
 */
export class GuardedPgClient extends pg.Client {
  constructor(config?: string | pg.ClientConfig) {
    super(config);
    this.on('error', () => {});
  }
}
