import type { Kysely } from 'kysely';
import type { Asset, AssetVersion, Run } from '../../domain/asset.js';
import { AppError } from '../../errors.js';
import type { NewVersion } from '../catalog.js';
import {
  type NewVersionRow,
  newVersionRow,
  outcomeOf,
  queuedRun,
  toAssetVersion,
  toNumber,
  toRun,
} from '../rows.js';
import type { AssetVersionRow, Database } from '../schema.js';
import { type CatalogDb, writeTransaction } from '../write-transaction.js';
import { lockLiveAsset, selectAsset } from './assets.js';
import { syncSearch } from './search.js';
import { syncImageHash } from './similar.js';

/** Version `version` of the asset. */
export function versionOf(db: Kysely<Database>, assetId: string, version: number) {
  return db
    .selectFrom('asset_versions')
    .selectAll()
    .where('asset_id', '=', assetId)
    .where('version', '=', version);
}

export async function getVersion(
  db: Kysely<Database>,
  assetId: string,
  version: number,
): Promise<AssetVersion | undefined> {
  const row = await versionOf(db, assetId, version).executeTakeFirst();
  return row === undefined ? undefined : toAssetVersion(row);
}

/** Several versions with one key cannot come from the API (keys are per upload); the first wins. */
export async function findVersionByOriginalKey(
  db: Kysely<Database>,
  key: string,
): Promise<AssetVersion | undefined> {
  const row = await db
    .selectFrom('asset_versions')
    .selectAll()
    .where('original_key', '=', key)
    .orderBy('asset_id', 'asc')
    .orderBy('version', 'asc')
    .limit(1)
    .executeTakeFirst();
  return row === undefined ? undefined : toAssetVersion(row);
}

export async function listVersions(db: Kysely<Database>, assetId: string): Promise<AssetVersion[]> {
  const rows = await db
    .selectFrom('asset_versions')
    .selectAll()
    .where('asset_id', '=', assetId)
    .orderBy('version', 'asc')
    .execute();
  return rows.map(toAssetVersion);
}

/** Throws `ASSET_NOT_FOUND` for an unknown or deleted asset. */
export async function createVersionWithRun(
  cdb: CatalogDb,
  version: NewVersion,
  runId: string,
): Promise<{ asset: Asset; run: Run }> {
  const { assetId } = version;
  return writeTransaction(cdb, async (trx) => {
    await lockLiveAsset(trx, cdb.dialect, assetId);
    const highest = await trx
      .selectFrom('asset_versions')
      .select((eb) => eb.fn.max('version').as('max'))
      .where('asset_id', '=', assetId)
      .executeTakeFirst();
    const next = toNumber(highest?.max ?? 0) + 1;
    const versionRow = newVersionRow(assetId, next, version, version.createdAt);
    await trx.insertInto('asset_versions').values(versionRow).execute();
    const runRow = queuedRun(runId, assetId, next, version.type, version.createdAt);
    await trx.insertInto('runs').values(runRow).execute();
    return { asset: await makeCurrent(trx, versionRow, version.createdAt), run: toRun(runRow) };
  });
}

/**
 * Throws `ASSET_NOT_FOUND` for an unknown or deleted asset, `NOT_FOUND` for an unknown version of a
 * live asset. The version's `duplicateOf` comes back with it.
 */
export async function setCurrentVersion(
  cdb: CatalogDb,
  assetId: string,
  version: number,
  at: string,
): Promise<Asset> {
  return writeTransaction(cdb, async (trx) => {
    await lockLiveAsset(trx, cdb.dialect, assetId);
    const row = await versionOf(trx, assetId, version).executeTakeFirst();
    if (row === undefined) {
      throw new AppError('NOT_FOUND', `asset ${assetId} has no version ${version}`);
    }
    return makeCurrent(trx, row, at);
  });
}

/**
 * Makes `row` its asset's current version: the asset takes the version's bytes, its outcome and its
 * `duplicate_of`, and its search document and near-duplicate index row follow. Returns the updated
 * asset.
 */
async function makeCurrent(
  trx: Kysely<Database>,
  row: AssetVersionRow | NewVersionRow,
  at: string,
): Promise<Asset> {
  await trx
    .updateTable('assets')
    .set({
      current_version: toNumber(row.version),
      filename: row.filename,
      type: row.type,
      mime_type: row.mime_type,
      size: toNumber(row.size),
      sha256: row.sha256,
      duplicate_of: row.duplicate_of,
      ...outcomeOf(row),
      updated_at: at,
    })
    .where('id', '=', row.asset_id)
    .execute();
  await syncSearch(trx, row.asset_id);
  await syncImageHash(trx, row.asset_id);
  return selectAsset(trx, row.asset_id);
}
