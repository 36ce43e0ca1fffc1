import type { Kysely } from 'kysely';
import type { ApiKey } from '../../domain/api-key.js';
import { toApiKey } from '../rows.js';
import type { Database } from '../schema.js';
import { type CatalogDb, write } from '../write-transaction.js';

export async function createApiKey(cdb: CatalogDb, key: ApiKey): Promise<void> {
  await write(cdb, (db) =>
    db
      .insertInto('api_keys')
      .values({
        id: key.id,
        name: key.name,
        prefix: key.prefix,
        secret_hash: key.secretHash,
        scopes: JSON.stringify(key.scopes),
        project_id: key.projectId,
        created_at: key.createdAt,
        last_used_at: key.lastUsedAt,
        revoked_at: key.revokedAt,
      })
      .execute(),
  );
}

export async function getApiKeyByPrefix(db: Kysely<Database>, prefix: string): Promise<ApiKey | undefined> {
  const row = await db.selectFrom('api_keys').selectAll().where('prefix', '=', prefix).executeTakeFirst();
  return row === undefined ? undefined : toApiKey(row);
}

/** Includes revoked keys, oldest first. */
export async function listApiKeys(db: Kysely<Database>): Promise<ApiKey[]> {
  const rows = await db
    .selectFrom('api_keys')
    .selectAll()
    .orderBy('created_at', 'asc')
    .orderBy('id', 'asc')
    .execute();
  return rows.map(toApiKey);
}

export async function revokeApiKey(cdb: CatalogDb, id: string, at: string): Promise<boolean> {
  const result = await write(cdb, (db) =>
    db
      .updateTable('api_keys')
      .set({ revoked_at: at })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst(),
  );
  return Number(result.numUpdatedRows) > 0;
}

/** Never rejects (best-effort, callers may not await it) and never moves `lastUsedAt` backwards. */
export async function touchApiKey(cdb: CatalogDb, id: string, at: string): Promise<void> {
  try {
    await write(cdb, (db) =>
      db
        .updateTable('api_keys')
        .set({ last_used_at: at })
        .where('id', '=', id)
        // Concurrent requests may finish out of order: never move last use backwards.
        .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<', at)]))
        .execute(),
    );
  } catch {
    // Best-effort by contract: callers may not await this, and a rejection nobody handles would
    // crash the process. Losing one "last used" timestamp is harmless.
  }
}
