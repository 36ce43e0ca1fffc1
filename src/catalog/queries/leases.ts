import { type CatalogDb, write } from '../write-transaction.js';

// Named leases: a lock every process on the database sees. Each statement is one conditional
// write, so the database serialises competing holders; times are ISO strings from the callers'
// clocks (leases last seconds, far longer than the skew of NTP-synchronised machines).

/** Takes the lease when nobody holds it or its holder let it expire; true when `holder` has it now. */
export async function acquireLease(
  cdb: CatalogDb,
  name: string,
  holder: string,
  at: string,
  expiresAt: string,
): Promise<boolean> {
  const result = await write(cdb, (db) =>
    db
      .insertInto('leases')
      .values({ name, holder, expires_at: expiresAt, release_requested: 0 })
      .onConflict((oc) =>
        oc
          .column('name')
          .doUpdateSet({ holder, expires_at: expiresAt, release_requested: 0 })
          .where('leases.expires_at', '<', at),
      )
      .executeTakeFirst(),
  );
  return Number(result.numInsertedOrUpdatedRows ?? 0) === 1;
}

/** Extends `holder`'s lease; says whether it still holds it and whether another process asked for it. */
export async function renewLease(
  cdb: CatalogDb,
  name: string,
  holder: string,
  expiresAt: string,
): Promise<{ held: boolean; releaseRequested: boolean }> {
  const row = await write(cdb, (db) =>
    db
      .updateTable('leases')
      .set({ expires_at: expiresAt })
      .where('name', '=', name)
      .where('holder', '=', holder)
      .returning('release_requested')
      .executeTakeFirst(),
  );
  return { held: row !== undefined, releaseRequested: row !== undefined && row.release_requested !== 0 };
}

/** Asks the current holder, if any, to let go (it sees this on its next renewal). */
export async function requestLeaseRelease(cdb: CatalogDb, name: string): Promise<void> {
  await write(cdb, (db) =>
    db
      .updateTable('leases')
      .set({ release_requested: 1 })
      .where('name', '=', name)
      .where('release_requested', '=', 0)
      .execute(),
  );
}

/** Gives the lease up; a no-op when `holder` no longer has it. */
export async function releaseLease(cdb: CatalogDb, name: string, holder: string): Promise<void> {
  await write(cdb, (db) =>
    db.deleteFrom('leases').where('name', '=', name).where('holder', '=', holder).execute(),
  );
}

/** Removes leases that expired before `at` (their holders died); returns how many. */
export async function deleteExpiredLeases(cdb: CatalogDb, at: string): Promise<number> {
  const result = await write(cdb, (db) =>
    db.deleteFrom('leases').where('expires_at', '<', at).executeTakeFirst(),
  );
  return Number(result.numDeletedRows);
}
