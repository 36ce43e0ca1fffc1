import type { Kysely } from 'kysely';
import type { UploadSession } from '../../domain/upload.js';
import { AppError } from '../../errors.js';
import { toUpload } from '../rows.js';
import type { Database } from '../schema.js';
import { type CatalogDb, write } from '../write-transaction.js';

export async function createUpload(cdb: CatalogDb, upload: UploadSession): Promise<void> {
  await write(cdb, (db) =>
    db
      .insertInto('uploads')
      .values({
        id: upload.id,
        protocol: upload.protocol,
        project_id: upload.projectId,
        media_id: upload.mediaId,
        filename: upload.filename,
        declared_type: upload.declaredType,
        size: upload.size,
        key: upload.key,
        store_upload_id: upload.storeUploadId,
        checksum: upload.checksum,
        state: upload.state,
        asset_id: upload.assetId,
        created_by: upload.createdBy,
        created_at: upload.createdAt,
        expires_at: upload.expiresAt,
      })
      .execute(),
  );
}

export async function getUpload(db: Kysely<Database>, id: string): Promise<UploadSession | undefined> {
  const row = await db.selectFrom('uploads').selectAll().where('id', '=', id).executeTakeFirst();
  return row === undefined ? undefined : toUpload(row);
}

/**
 * `open` -> `completing`, for one caller. With `claim`, the claim is timed, and a `completing` one
 * older than `claim.staleBefore` (its process died mid-completion) can be taken over.
 */
export async function claimUploadCompletion(
  cdb: CatalogDb,
  id: string,
  claim?: { at: string; staleBefore: string },
): Promise<boolean> {
  // One conditional UPDATE: the database serialises concurrent claims on the row, and only the
  // first still sees it claimable.
  const result = await write(cdb, (db) =>
    db
      .updateTable('uploads')
      .set({ state: 'completing', claimed_at: claim?.at ?? null })
      .where('id', '=', id)
      .where((eb) =>
        claim === undefined
          ? eb('state', '=', 'open')
          : eb.or([
              eb('state', '=', 'open'),
              eb.and([
                eb('state', '=', 'completing'),
                eb.or([eb('claimed_at', 'is', null), eb('claimed_at', '<', claim.staleBefore)]),
              ]),
            ]),
      )
      .executeTakeFirst(),
  );
  return Number(result.numUpdatedRows) === 1;
}

/**
 * Of an upload that is not `completing`, throws `UPLOAD_NOT_FOUND` (unknown) or `UPLOAD_CONFLICT`,
 * except a repeat with the same asset id, which is a no-op.
 */
export async function finishUpload(cdb: CatalogDb, id: string, assetId: string): Promise<void> {
  const result = await write(cdb, (db) =>
    db
      .updateTable('uploads')
      .set({ state: 'completed', asset_id: assetId })
      .where('id', '=', id)
      .where('state', '=', 'completing')
      .executeTakeFirst(),
  );
  if (Number(result.numUpdatedRows) === 1) return;
  const upload = await getUpload(cdb.db, id);
  if (upload === undefined) throw new AppError('UPLOAD_NOT_FOUND', `upload ${id} not found`);
  // Finishing twice with the same asset (a retried call) is fine.
  if (upload.state === 'completed' && upload.assetId === assetId) return;
  throw new AppError('UPLOAD_CONFLICT', `upload ${id} is ${upload.state}, not completing`);
}

/** A no-op unless the upload is `completing`. */
export async function reopenUpload(cdb: CatalogDb, id: string): Promise<void> {
  // A compensating action: only a `completing` upload goes back to `open`; in any other state
  // (aborted meanwhile, unknown) there is nothing to undo.
  await write(cdb, (db) =>
    db
      .updateTable('uploads')
      .set({ state: 'open', asset_id: null })
      .where('id', '=', id)
      .where('state', '=', 'completing')
      .execute(),
  );
}

/** Returns true for an already aborted upload too. */
export async function abortUpload(cdb: CatalogDb, id: string): Promise<boolean> {
  const result = await write(cdb, (db) =>
    db
      .updateTable('uploads')
      .set({ state: 'aborted' })
      .where('id', '=', id)
      .where('state', '<>', 'completed')
      .executeTakeFirst(),
  );
  return Number(result.numUpdatedRows) > 0;
}

/** Expired uploads nobody is completing: `open` ones, and with `staleBefore` stale claims too. */
export async function listExpiredUploads(
  db: Kysely<Database>,
  at: string,
  limit: number,
  staleBefore?: string,
): Promise<UploadSession[]> {
  const rows = await db
    .selectFrom('uploads')
    .selectAll()
    .where((eb) =>
      staleBefore === undefined
        ? eb('state', '=', 'open')
        : eb.or([
            eb('state', '=', 'open'),
            eb.and([
              eb('state', '=', 'completing'),
              eb.or([eb('claimed_at', 'is', null), eb('claimed_at', '<', staleBefore)]),
            ]),
          ]),
    )
    .where('expires_at', '<', at)
    .orderBy('expires_at', 'asc')
    .orderBy('id', 'asc')
    .limit(limit)
    .execute();
  return rows.map(toUpload);
}
