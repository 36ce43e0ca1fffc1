import type { Kysely, Updateable } from 'kysely';
import type { Asset, AssetStatus, Run } from '../../domain/asset.js';
import { AppError } from '../../errors.js';
import type { AssetFilter, AssetPage, AssetPatch, NewAsset } from '../catalog.js';
import { newVersionRow, queuedRun, toAsset, toNumber, toRun } from '../rows.js';
import type { AssetRow, AssetsTable, Database } from '../schema.js';
import {
  type CatalogDb,
  type CatalogDialect,
  lockRows,
  write,
  writeTransaction,
} from '../write-transaction.js';
import { matchesSearch, searchTerms, syncSearch } from './search.js';

/** The asset with this id, deleted or not. */
function assetById(db: Kysely<Database>, id: string) {
  return db.selectFrom('assets').selectAll().where('id', '=', id);
}

export async function getAsset(db: Kysely<Database>, id: string): Promise<Asset | undefined> {
  const row = await assetById(db, id).executeTakeFirst();
  return row === undefined ? undefined : toAsset(row);
}

/** The asset as the caller's transaction now sees it (it must exist). */
export async function selectAsset(db: Kysely<Database>, id: string): Promise<Asset> {
  return toAsset(await assetById(db, id).executeTakeFirstOrThrow());
}

/**
 * The asset row, locked on PostgreSQL; `ASSET_NOT_FOUND` if unknown or deleted (so
 * `setCurrentVersion`, `createVersionWithRun` and `createRun` throw it for such an asset).
 */
export async function lockLiveAsset(
  trx: Kysely<Database>,
  dialect: CatalogDialect,
  assetId: string,
): Promise<AssetRow> {
  const row = await assetById(trx, assetId)
    .$call((qb) => lockRows(dialect, qb))
    .executeTakeFirst();
  if (row === undefined || row.deleted_at !== null) {
    throw new AppError('ASSET_NOT_FOUND', `asset ${assetId} not found`);
  }
  return row;
}

const MEDIA_ID_INDEX = 'assets_project_media_id_uidx';

/** A unique violation of "one live asset per (project, media id)", from either driver. */
function isMediaIdConflict(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const { code, constraint } = err as Error & { code?: unknown; constraint?: unknown };
  if (code === '23505') return constraint === MEDIA_ID_INDEX;
  return code === 'SQLITE_CONSTRAINT_UNIQUE' && err.message.includes('assets.project_id, assets.media_id');
}

/** Runs `fn`, turning a media id conflict into `UPLOAD_CONFLICT` with `message`. */
async function mediaIdConflictAs<T>(message: () => string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (isMediaIdConflict(err)) throw new AppError('UPLOAD_CONFLICT', message(), { cause: err });
    throw err;
  }
}

/**
 * A media id a live asset of the project already has (two concurrent uploads) throws
 * `AppError('UPLOAD_CONFLICT')`.
 */
export async function createAssetWithRun(
  cdb: CatalogDb,
  asset: NewAsset,
  runId: string,
): Promise<{ asset: Asset; run: Run }> {
  const assetRow = {
    id: asset.id,
    project_id: asset.projectId,
    filename: asset.filename,
    type: asset.type,
    mime_type: asset.mimeType,
    size: asset.size,
    sha256: asset.sha256,
    status: 'processing',
    error: null,
    width: null,
    height: null,
    format: null,
    blurhash: null,
    duration_sec: null,
    perceptual_hash: null,
    current_version: 1,
    extra: '{}',
    uploaded_at: asset.uploadedAt,
    processed_at: null,
    updated_at: asset.uploadedAt,
    media_id: asset.mediaId ?? null,
    tags: JSON.stringify(asset.tags ?? []),
    duplicate_of: asset.duplicateOf ?? null,
    deleted_at: null,
  } satisfies AssetRow;
  const versionRow = newVersionRow(asset.id, 1, asset, asset.uploadedAt);
  const runRow = queuedRun(runId, asset.id, 1, asset.type, asset.uploadedAt);
  await mediaIdConflictAs(
    () => `project ${asset.projectId} already has an asset with media id ${asset.mediaId ?? ''}`,
    () =>
      writeTransaction(cdb, async (trx) => {
        await trx.insertInto('assets').values(assetRow).execute();
        await trx.insertInto('asset_versions').values(versionRow).execute();
        await trx.insertInto('runs').values(runRow).execute();
        await syncSearch(trx, asset.id);
      }),
  );
  return { asset: toAsset(assetRow), run: toRun(runRow) };
}

export async function findAssetByMediaId(
  db: Kysely<Database>,
  projectId: string,
  mediaId: string,
): Promise<Asset | undefined> {
  const row = await db
    .selectFrom('assets')
    .selectAll()
    .where('project_id', '=', projectId)
    .where('media_id', '=', mediaId)
    .where('deleted_at', 'is', null)
    .executeTakeFirst();
  return row === undefined ? undefined : toAsset(row);
}

export async function findAssetsBySha256(
  db: Kysely<Database>,
  projectId: string,
  sha256: string,
): Promise<Asset[]> {
  const rows = await db
    .selectFrom('assets')
    .selectAll()
    .where('project_id', '=', projectId)
    .where('sha256', '=', sha256)
    .where('deleted_at', 'is', null)
    .orderBy('id', 'asc')
    .execute();
  return rows.map(toAsset);
}

/**
 * Returns `undefined` for a deleted asset (as for an unknown one). A new filename is the asset's
 * display name; versions keep the filename they were uploaded with (so a new version or
 * `setCurrentVersion` replaces it). An empty patch changes nothing, `updatedAt` included.
 */
export async function updateAsset(
  cdb: CatalogDb,
  id: string,
  patch: AssetPatch,
  at: string,
): Promise<Asset | undefined> {
  return writeTransaction(cdb, async (trx) => {
    const row = await assetById(trx, id)
      .where('deleted_at', 'is', null)
      .$call((qb) => lockRows(cdb.dialect, qb))
      .executeTakeFirst();
    if (row === undefined) return undefined;
    const update: Updateable<AssetsTable> = {};
    if (patch.tags !== undefined) update.tags = JSON.stringify(patch.tags);
    if (patch.filename !== undefined) update.filename = patch.filename;
    if (Object.keys(update).length === 0) return toAsset(row);
    update.updated_at = at;
    await trx.updateTable('assets').set(update).where('id', '=', id).execute();
    await syncSearch(trx, id);
    return selectAsset(trx, id);
  });
}

export async function softDeleteAsset(cdb: CatalogDb, id: string, at: string): Promise<boolean> {
  const result = await write(cdb, (db) =>
    db
      .updateTable('assets')
      .set({ deleted_at: at, updated_at: at })
      .where('id', '=', id)
      .where('deleted_at', 'is', null)
      .executeTakeFirst(),
  );
  return Number(result.numUpdatedRows) > 0;
}

/** Restoring an asset whose media id a newer live asset has taken throws `UPLOAD_CONFLICT`. */
export async function restoreAsset(cdb: CatalogDb, id: string, at: string): Promise<boolean> {
  const result = await mediaIdConflictAs(
    () => `asset ${id} cannot be restored: another asset of its project now has its media id`,
    () =>
      write(cdb, (db) =>
        db
          .updateTable('assets')
          .set({ deleted_at: null, updated_at: at })
          .where('id', '=', id)
          .where('deleted_at', 'is not', null)
          .executeTakeFirst(),
      ),
  );
  return Number(result.numUpdatedRows) > 0;
}

export async function listAssetsDeletedBefore(
  db: Kysely<Database>,
  at: string,
  limit: number,
): Promise<Asset[]> {
  const rows = await db
    .selectFrom('assets')
    .selectAll()
    .where('deleted_at', 'is not', null)
    .where('deleted_at', '<', at)
    .orderBy('deleted_at', 'asc')
    .orderBy('id', 'asc')
    .limit(limit)
    .execute();
  return rows.map(toAsset);
}

/** Also purges a live asset; returns each key once, and `{ keys: [] }` for an unknown id. */
export async function purgeAsset(cdb: CatalogDb, id: string): Promise<{ keys: string[] }> {
  return writeTransaction(cdb, async (trx) => {
    const originals = await trx
      .selectFrom('asset_versions')
      .select('original_key as key')
      .where('asset_id', '=', id)
      .orderBy('version', 'asc')
      .execute();
    const renditions = await trx
      .selectFrom('renditions')
      .select('key')
      .where('asset_id', '=', id)
      .orderBy('version', 'asc')
      .orderBy('name', 'asc')
      .execute();
    // Explicit deletes, children first: correct even on a connection without foreign keys enforced.
    await trx
      .deleteFrom('steps')
      .where('run_id', 'in', trx.selectFrom('runs').select('id').where('asset_id', '=', id))
      .execute();
    await trx.deleteFrom('runs').where('asset_id', '=', id).execute();
    await trx.deleteFrom('renditions').where('asset_id', '=', id).execute();
    await trx.deleteFrom('asset_versions').where('asset_id', '=', id).execute();
    await trx.deleteFrom('asset_search').where('asset_id', '=', id).execute();
    await trx.deleteFrom('image_hashes').where('asset_id', '=', id).execute();
    await trx.deleteFrom('assets').where('id', '=', id).execute();
    return { keys: [...new Set([...originals, ...renditions].map((row) => row.key))] };
  });
}

export async function listAssets(
  db: Kysely<Database>,
  dialect: CatalogDialect,
  filter: AssetFilter,
): Promise<AssetPage> {
  const { limit } = filter;
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
    throw new AppError('VALIDATION_FAILED', `limit must be an integer from 1 to 1000, got ${limit}`);
  }
  let query = db.selectFrom('assets').selectAll();
  query =
    filter.deleted === true
      ? query.where('deleted_at', 'is not', null)
      : query.where('deleted_at', 'is', null);
  if (filter.projectId !== undefined) query = query.where('project_id', '=', filter.projectId);
  if (filter.type !== undefined) query = query.where('type', '=', filter.type);
  if (filter.status !== undefined) query = query.where('status', '=', filter.status);
  if (filter.mediaId !== undefined) query = query.where('media_id', '=', filter.mediaId);
  if (filter.beforeId !== undefined) query = query.where('id', '<', filter.beforeId);
  if (filter.q !== undefined && filter.q.trim() !== '') {
    const terms = searchTerms(filter.q);
    // Text with no searchable word (only punctuation, say) can match nothing.
    if (terms.length === 0) return { items: [], nextBeforeId: null };
    query = query.where(matchesSearch(dialect, terms));
  }
  // One extra row tells whether another page exists without a count query.
  const rows = await query
    .orderBy('id', 'desc')
    .limit(limit + 1)
    .execute();
  const items = rows.slice(0, limit).map(toAsset);
  const last = items.at(-1);
  return { items, nextBeforeId: rows.length > limit && last !== undefined ? last.id : null };
}

/** Counts live assets only. */
export async function countAssetsByStatus(db: Kysely<Database>): Promise<Record<AssetStatus, number>> {
  const rows = await db
    .selectFrom('assets')
    .select((eb) => ['status', eb.fn.countAll<number | string | bigint>().as('n')])
    .where('deleted_at', 'is', null)
    .groupBy('status')
    .execute();
  const counts: Record<AssetStatus, number> = { processing: 0, ready: 0, failed: 0 };
  for (const row of rows) counts[row.status] = toNumber(row.n);
  return counts;
}
