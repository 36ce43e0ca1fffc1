import {
  type Kysely,
  type Migration,
  type MigrationProvider,
  Migrator,
  type RawBuilder,
  type SqlBool,
  sql,
  type Updateable,
} from 'kysely';
import type { ApiKey, Scope } from '../domain/api-key.js';
import type {
  Asset,
  AssetFacts,
  AssetStatus,
  AssetVersion,
  MediaType,
  Rendition,
  Run,
  RunWithSteps,
  StepRecord,
} from '../domain/asset.js';
import type { Project, ProjectLimits } from '../domain/project.js';
import type { UploadSession } from '../domain/upload.js';
import { AppError } from '../errors.js';
import type {
  AssetFilter,
  AssetPage,
  AssetPatch,
  Catalog,
  FinishStep,
  NewAsset,
  NewRendition,
  NewVersion,
  ProjectPatch,
} from './catalog.js';
import type {
  ApiKeyRow,
  AssetRow,
  AssetsTable,
  AssetVersionRow,
  Database,
  ProjectRow,
  ProjectsTable,
  RenditionRow,
  RunRow,
  StepRow,
  UploadRow,
} from './schema.js';

export type CatalogDialect = 'sqlite' | 'postgres';

/** Runs `fn` while holding a lock; see `KyselyCatalogOptions.writeLock`. */
import type { WriteLock } from '../lib/sqlite-write-lock.js';

export type { WriteLock };

export interface KyselyCatalogOptions {
  /**
   * Serialises every write of this catalog with the writes of other catalogs in the same process.
   * SQLite needs it when one process opens the same file twice: better-sqlite3 waits for a busy
   * database synchronously (`busy_timeout`), so a connection waiting for a write lock held by another
   * connection of the same process would block the event loop that connection needs to commit.
   * Writers in other processes are handled by `BEGIN IMMEDIATE` + `busy_timeout`.
   */
  writeLock?: WriteLock | undefined;
}

const passThrough: WriteLock = (fn) => fn();

/**
 * The catalog over Kysely: one set of queries for SQLite and PostgreSQL. Dialect differences are
 * confined to `migrate`, `writeTransaction`, row locking (`forUpdate`, PostgreSQL only) and the
 * full-text match (`#matchesSearch`).
 *
 * Where the port (catalog.ts) leaves a case open, this adapter decides as follows:
 * - Full-text search: filename, tags and the string values of `extra` (nested ones included, keys
 *   excluded) are reduced to words by `searchWords` (letters and digits only, lower-cased, accents
 *   removed) and stored in `asset_search`; the query goes through the same function, so both
 *   dialects agree on what a word is and user input never reaches the FTS5 / tsquery syntax. A blank
 *   `q` is no filter; a `q` without any letter or digit (e.g. `"*"`) matches nothing. At most
 *   `MAX_QUERY_WORDS` words of `q` are used; words are cut to `MAX_WORD_CHARS` on both sides.
 * - `createAssetWithRun` with a media id a live asset of the project already has (two concurrent
 *   uploads), and `restoreAsset` of an asset whose media id a newer live asset has taken, throw
 *   `AppError('UPLOAD_CONFLICT')`.
 * - `setCurrentVersion`, `createVersionWithRun` and `createRun` throw `ASSET_NOT_FOUND` for an
 *   unknown or deleted asset; `setCurrentVersion` throws `NOT_FOUND` for an unknown version of a live
 *   asset. Each version remembers the `duplicateOf` it was uploaded with, restored with it.
 * - `updateAsset` returns `undefined` for a deleted asset (as for an unknown one); a new filename is
 *   the asset's display name, versions keep the filename they were uploaded with (so a new version or
 *   `setCurrentVersion` replaces it). An empty patch changes nothing, `updatedAt` included.
 * - `createRun` keeps the facts and `processedAt` of the version until the new run finishes.
 * - `countAssetsByStatus` counts live assets only; `purgeAsset` also purges a live asset, returns each
 *   key once, and `{ keys: [] }` for an unknown id.
 * - `touchApiKey` never rejects (best-effort, callers may not await it) and never moves
 *   `lastUsedAt` backwards. `listApiKeys` includes revoked keys, oldest first.
 * - `finishUpload` of an upload that is not `completing` throws `UPLOAD_NOT_FOUND` (unknown) or
 *   `UPLOAD_CONFLICT`, except a repeat with the same asset id, which is a no-op. `reopenUpload` is a
 *   no-op unless the upload is `completing`. `abortUpload` of an already aborted upload returns true.
 * - Assets carry no foreign key to `projects` (their `project_id` predates projects); migration 0002
 *   creates a project for every project id existing assets use, besides `default`.
 */
export class KyselyCatalog implements Catalog {
  readonly dialect: CatalogDialect;
  readonly #db: Kysely<Database>;
  readonly #migrations: Record<string, Migration>;
  readonly #writeLock: WriteLock;

  constructor(
    db: Kysely<Database>,
    dialect: CatalogDialect,
    migrations: Record<string, Migration>,
    options: KyselyCatalogOptions = {},
  ) {
    this.#db = db;
    this.dialect = dialect;
    this.#migrations = migrations;
    this.#writeLock = options.writeLock ?? passThrough;
  }

  async migrate(): Promise<void> {
    const migrations = this.#migrations;
    const provider: MigrationProvider = { getMigrations: async () => migrations };
    if (this.dialect === 'sqlite') {
      // Kysely's SQLite adapter has no migration lock (it relies on the driver's single connection,
      // which only serialises within one Kysely instance) and runs migrations outside a transaction.
      // We run the whole Migrator inside `BEGIN IMMEDIATE` on one connection: the first process takes
      // the write lock, others wait (busy_timeout) and then see the migrations recorded as done.
      // SQLite DDL is transactional, so a failed migration leaves nothing behind.
      await this.writeTransaction(async (conn) => {
        throwIfMigrationFailed(await new Migrator({ db: conn, provider }).migrateToLatest());
      });
      return;
    }
    // PostgreSQL: Kysely takes a session advisory lock and runs the migrations in one transaction.
    // Its bookkeeping tables go into the schema this connection resolves to (search_path), so a table
    // of the same name in another schema is never mistaken for ours.
    const { rows } = await sql<{ schema: string | null }>`select current_schema() as schema`.execute(
      this.#db,
    );
    const schema = rows[0]?.schema;
    if (!schema) throw new Error('PostgreSQL has no current schema (check search_path)');
    const migrator = new Migrator({ db: this.#db, provider, migrationTableSchema: schema });
    throwIfMigrationFailed(await migrator.migrateToLatest());
  }

  async close(): Promise<void> {
    await this.#db.destroy();
  }

  async ping(): Promise<void> {
    await sql`select 1`.execute(this.#db);
  }

  async createAssetWithRun(asset: NewAsset, runId: string): Promise<{ asset: Asset; run: Run }> {
    const duplicateOf = asset.duplicateOf ?? null;
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
      current_version: 1,
      extra: '{}',
      uploaded_at: asset.uploadedAt,
      processed_at: null,
      updated_at: asset.uploadedAt,
      media_id: asset.mediaId ?? null,
      tags: JSON.stringify(asset.tags ?? []),
      duplicate_of: duplicateOf,
      deleted_at: null,
    } satisfies AssetRow;
    const versionRow = {
      asset_id: asset.id,
      version: 1,
      original_key: asset.originalKey,
      filename: asset.filename,
      mime_type: asset.mimeType,
      size: asset.size,
      sha256: asset.sha256,
      created_at: asset.uploadedAt,
      type: asset.type,
      ...PROCESSING_OUTCOME,
      duplicate_of: duplicateOf,
    } satisfies AssetVersionRow;
    const runRow = queuedRun(runId, asset.id, 1, asset.type, asset.uploadedAt);
    try {
      await this.writeTransaction(async (trx) => {
        await trx.insertInto('assets').values(assetRow).execute();
        await trx.insertInto('asset_versions').values(versionRow).execute();
        await trx.insertInto('runs').values(runRow).execute();
        await this.#syncSearch(trx, asset.id);
      });
    } catch (err) {
      if (isMediaIdConflict(err)) {
        throw new AppError(
          'UPLOAD_CONFLICT',
          `project ${asset.projectId} already has an asset with media id ${asset.mediaId ?? ''}`,
          { cause: err },
        );
      }
      throw err;
    }
    return { asset: toAsset(assetRow), run: toRun(runRow) };
  }

  async createVersionWithRun(version: NewVersion, runId: string): Promise<{ asset: Asset; run: Run }> {
    const { assetId } = version;
    return this.writeTransaction(async (trx) => {
      await this.#lockLiveAsset(trx, assetId);
      const highest = await trx
        .selectFrom('asset_versions')
        .select((eb) => eb.fn.max('version').as('max'))
        .where('asset_id', '=', assetId)
        .executeTakeFirst();
      const next = toNumber(highest?.max ?? 0) + 1;
      const duplicateOf = version.duplicateOf ?? null;
      await trx
        .insertInto('asset_versions')
        .values({
          asset_id: assetId,
          version: next,
          original_key: version.originalKey,
          filename: version.filename,
          mime_type: version.mimeType,
          size: version.size,
          sha256: version.sha256,
          created_at: version.createdAt,
          type: version.type,
          ...PROCESSING_OUTCOME,
          duplicate_of: duplicateOf,
        })
        .execute();
      const runRow = queuedRun(runId, assetId, next, version.type, version.createdAt);
      await trx.insertInto('runs').values(runRow).execute();
      await trx
        .updateTable('assets')
        .set({
          current_version: next,
          filename: version.filename,
          type: version.type,
          mime_type: version.mimeType,
          size: version.size,
          sha256: version.sha256,
          duplicate_of: duplicateOf,
          ...PROCESSING_OUTCOME,
          updated_at: version.createdAt,
        })
        .where('id', '=', assetId)
        .execute();
      await this.#syncSearch(trx, assetId);
      return { asset: await selectAsset(trx, assetId), run: toRun(runRow) };
    });
  }

  async listVersions(assetId: string): Promise<AssetVersion[]> {
    const rows = await this.#db
      .selectFrom('asset_versions')
      .selectAll()
      .where('asset_id', '=', assetId)
      .orderBy('version', 'asc')
      .execute();
    return rows.map(toAssetVersion);
  }

  async setCurrentVersion(assetId: string, version: number, at: string): Promise<Asset> {
    return this.writeTransaction(async (trx) => {
      await this.#lockLiveAsset(trx, assetId);
      const row = await trx
        .selectFrom('asset_versions')
        .selectAll()
        .where('asset_id', '=', assetId)
        .where('version', '=', version)
        .executeTakeFirst();
      if (row === undefined) {
        throw new AppError('NOT_FOUND', `asset ${assetId} has no version ${version}`);
      }
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
        .where('id', '=', assetId)
        .execute();
      await this.#syncSearch(trx, assetId);
      return selectAsset(trx, assetId);
    });
  }

  async createRun(assetId: string, runId: string, at: string): Promise<Run> {
    return this.writeTransaction(async (trx) => {
      const asset = await this.#lockLiveAsset(trx, assetId);
      const version = toNumber(asset.current_version);
      const runRow = queuedRun(runId, assetId, version, asset.type, at);
      await trx.insertInto('runs').values(runRow).execute();
      // Facts stay until the new run publishes; only the status says "being processed again".
      await trx
        .updateTable('asset_versions')
        .set({ status: 'processing', error: null })
        .where('asset_id', '=', assetId)
        .where('version', '=', version)
        .execute();
      await trx
        .updateTable('assets')
        .set({ status: 'processing', error: null, updated_at: at })
        .where('id', '=', assetId)
        .execute();
      return toRun(runRow);
    });
  }

  async findAssetByMediaId(projectId: string, mediaId: string): Promise<Asset | undefined> {
    const row = await this.#db
      .selectFrom('assets')
      .selectAll()
      .where('project_id', '=', projectId)
      .where('media_id', '=', mediaId)
      .where('deleted_at', 'is', null)
      .executeTakeFirst();
    return row === undefined ? undefined : toAsset(row);
  }

  async findAssetsBySha256(projectId: string, sha256: string): Promise<Asset[]> {
    const rows = await this.#db
      .selectFrom('assets')
      .selectAll()
      .where('project_id', '=', projectId)
      .where('sha256', '=', sha256)
      .where('deleted_at', 'is', null)
      .orderBy('id', 'asc')
      .execute();
    return rows.map(toAsset);
  }

  async updateAsset(id: string, patch: AssetPatch, at: string): Promise<Asset | undefined> {
    return this.writeTransaction(async (trx) => {
      const row = await trx
        .selectFrom('assets')
        .selectAll()
        .where('id', '=', id)
        .where('deleted_at', 'is', null)
        .$if(this.dialect === 'postgres', (qb) => qb.forUpdate())
        .executeTakeFirst();
      if (row === undefined) return undefined;
      const update: Updateable<AssetsTable> = {};
      if (patch.tags !== undefined) update.tags = JSON.stringify(patch.tags);
      if (patch.filename !== undefined) update.filename = patch.filename;
      if (Object.keys(update).length === 0) return toAsset(row);
      update.updated_at = at;
      await trx.updateTable('assets').set(update).where('id', '=', id).execute();
      await this.#syncSearch(trx, id);
      return selectAsset(trx, id);
    });
  }

  async softDeleteAsset(id: string, at: string): Promise<boolean> {
    const result = await this.#write((db) =>
      db
        .updateTable('assets')
        .set({ deleted_at: at, updated_at: at })
        .where('id', '=', id)
        .where('deleted_at', 'is', null)
        .executeTakeFirst(),
    );
    return Number(result.numUpdatedRows) > 0;
  }

  async restoreAsset(id: string, at: string): Promise<boolean> {
    try {
      const result = await this.#write((db) =>
        db
          .updateTable('assets')
          .set({ deleted_at: null, updated_at: at })
          .where('id', '=', id)
          .where('deleted_at', 'is not', null)
          .executeTakeFirst(),
      );
      return Number(result.numUpdatedRows) > 0;
    } catch (err) {
      if (isMediaIdConflict(err)) {
        throw new AppError(
          'UPLOAD_CONFLICT',
          `asset ${id} cannot be restored: another asset of its project now has its media id`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  async listAssetsDeletedBefore(at: string, limit: number): Promise<Asset[]> {
    const rows = await this.#db
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

  async purgeAsset(id: string): Promise<{ keys: string[] }> {
    return this.writeTransaction(async (trx) => {
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
      await trx.deleteFrom('assets').where('id', '=', id).execute();
      return { keys: [...new Set([...originals, ...renditions].map((row) => row.key))] };
    });
  }

  async getAsset(id: string): Promise<Asset | undefined> {
    const row = await this.#db.selectFrom('assets').selectAll().where('id', '=', id).executeTakeFirst();
    return row === undefined ? undefined : toAsset(row);
  }

  async listAssets(filter: AssetFilter): Promise<AssetPage> {
    const { limit } = filter;
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      throw new AppError('VALIDATION_FAILED', `limit must be an integer from 1 to 1000, got ${limit}`);
    }
    let query = this.#db.selectFrom('assets').selectAll();
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
      query = query.where(this.#matchesSearch(terms));
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

  async getVersion(assetId: string, version: number): Promise<AssetVersion | undefined> {
    const row = await this.#db
      .selectFrom('asset_versions')
      .selectAll()
      .where('asset_id', '=', assetId)
      .where('version', '=', version)
      .executeTakeFirst();
    return row === undefined ? undefined : toAssetVersion(row);
  }

  async getRun(runId: string): Promise<Run | undefined> {
    const row = await this.#db.selectFrom('runs').selectAll().where('id', '=', runId).executeTakeFirst();
    return row === undefined ? undefined : toRun(row);
  }

  async listRunsWithSteps(assetId: string): Promise<RunWithSteps[]> {
    const runs = await this.#db
      .selectFrom('runs')
      .selectAll()
      .where('asset_id', '=', assetId)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .execute();
    if (runs.length === 0) return [];
    const steps = await this.#db
      .selectFrom('steps')
      .selectAll()
      .where(
        'run_id',
        'in',
        runs.map((run) => run.id),
      )
      .orderBy('started_at', 'asc')
      .orderBy('id', 'asc')
      .execute();
    const byRun = new Map<string, StepRecord[]>();
    for (const step of steps) {
      const list = byRun.get(step.run_id) ?? [];
      list.push(toStep(step));
      byRun.set(step.run_id, list);
    }
    return runs.map((run) => ({ ...toRun(run), steps: byRun.get(run.id) ?? [] }));
  }

  async listUnfinishedRuns(limit: number): Promise<Run[]> {
    const rows = await this.#db
      .selectFrom('runs')
      .selectAll()
      .where('status', 'in', ['queued', 'running'])
      .orderBy('created_at', 'asc')
      .orderBy('id', 'asc')
      .limit(limit)
      .execute();
    return rows.map(toRun);
  }

  async startRun(runId: string, at: string): Promise<Run> {
    return this.writeTransaction(async (trx) => {
      const updated = await trx
        .updateTable('runs')
        .set((eb) => ({
          status: 'running',
          started_at: eb.fn.coalesce('started_at', eb.val(at)),
          attempts: eb('attempts', '+', 1),
        }))
        .where('id', '=', runId)
        // A finished run stays finished (a redelivered job must not reopen it); the caller sees
        // its status in the returned record.
        .where('status', 'in', ['queued', 'running'])
        .returningAll()
        .executeTakeFirst();
      if (updated !== undefined) return toRun(updated);
      const existing = await trx.selectFrom('runs').selectAll().where('id', '=', runId).executeTakeFirst();
      if (existing === undefined) throw new AppError('NOT_FOUND', `run ${runId} not found`);
      return toRun(existing);
    });
  }

  async startStep(step: {
    id: string;
    runId: string;
    name: string;
    attempt: number;
    startedAt: string;
  }): Promise<void> {
    await this.#write((db) =>
      db
        .insertInto('steps')
        .values({
          id: step.id,
          run_id: step.runId,
          name: step.name,
          attempt: step.attempt,
          status: 'running',
          started_at: step.startedAt,
          finished_at: null,
          duration_ms: null,
          error: null,
          output: null,
        })
        .execute(),
    );
  }

  async finishStep(stepId: string, finish: FinishStep): Promise<void> {
    await this.writeTransaction(async (trx) => {
      const step = await trx
        .selectFrom('steps')
        .select(['started_at', 'status'])
        .where('id', '=', stepId)
        .executeTakeFirst();
      if (step === undefined) throw new AppError('NOT_FOUND', `step ${stepId} not found`);
      // Only a running step finishes: one marked `abandoned` stays so even if its old worker wakes up.
      if (step.status !== 'running') return;
      await trx
        .updateTable('steps')
        .set({
          status: finish.status,
          finished_at: finish.finishedAt,
          duration_ms: durationMs(step.started_at, finish.finishedAt),
          error: finish.error ?? null,
          output: finish.output == null ? null : JSON.stringify(finish.output),
        })
        .where('id', '=', stepId)
        .where('status', '=', 'running')
        .execute();
    });
  }

  async listSteps(runId: string): Promise<StepRecord[]> {
    const rows = await this.#db
      .selectFrom('steps')
      .selectAll()
      .where('run_id', '=', runId)
      .orderBy('started_at', 'asc')
      .orderBy('id', 'asc')
      .execute();
    return rows.map(toStep);
  }

  async abandonRunningSteps(runId: string, at: string, reason: string): Promise<number> {
    const result = await this.#write((db) =>
      db
        .updateTable('steps')
        // No duration: when the worker stopped is unknown, `at` is only when we noticed.
        .set({ status: 'abandoned', finished_at: at, error: reason })
        .where('run_id', '=', runId)
        .where('status', '=', 'running')
        .executeTakeFirst(),
    );
    return Number(result.numUpdatedRows);
  }

  async putRendition(rendition: NewRendition): Promise<void> {
    const row = {
      asset_id: rendition.assetId,
      version: rendition.version,
      name: rendition.name,
      key: rendition.key,
      content_type: rendition.contentType,
      size: rendition.size,
      width: intOrNull(rendition.width),
      height: intOrNull(rendition.height),
      created_at: rendition.createdAt,
    };
    await this.#write((db) =>
      db
        .insertInto('renditions')
        .values(row)
        .onConflict((oc) =>
          oc.columns(['asset_id', 'version', 'name']).doUpdateSet({
            key: row.key,
            content_type: row.content_type,
            size: row.size,
            width: row.width,
            height: row.height,
            created_at: row.created_at,
          }),
        )
        .execute(),
    );
  }

  async listRenditions(assetId: string, version: number): Promise<Rendition[]> {
    const rows = await this.#db
      .selectFrom('renditions')
      .selectAll()
      .where('asset_id', '=', assetId)
      .where('version', '=', version)
      .orderBy('name', 'asc')
      .execute();
    return rows.map(toRendition);
  }

  async publishRun(runId: string, facts: AssetFacts, at: string): Promise<void> {
    await this.#finishRun(runId, at, { status: 'succeeded', error: null }, (stored) => ({
      status: 'ready',
      error: null,
      // Absent facts keep the stored value; an explicit null clears it.
      width: facts.width === undefined ? stored.width : intOrNull(facts.width),
      height: facts.height === undefined ? stored.height : intOrNull(facts.height),
      format: facts.format === undefined ? stored.format : facts.format,
      blurhash: facts.blurhash === undefined ? stored.blurhash : facts.blurhash,
      duration_sec: facts.durationSec === undefined ? stored.duration_sec : facts.durationSec,
      extra:
        facts.extra === undefined
          ? stored.extra
          : JSON.stringify({ ...parseJsonObject(stored.extra), ...facts.extra }),
      processed_at: at,
    }));
  }

  async failRun(runId: string, reason: string, at: string): Promise<void> {
    await this.#finishRun(runId, at, { status: 'failed', error: reason }, (stored) => ({
      ...stored,
      status: 'failed',
      error: reason,
      processed_at: at,
    }));
  }

  async countAssetsByStatus(): Promise<Record<AssetStatus, number>> {
    const rows = await this.#db
      .selectFrom('assets')
      .select((eb) => ['status', eb.fn.countAll<number | string | bigint>().as('n')])
      .where('deleted_at', 'is', null)
      .groupBy('status')
      .execute();
    const counts: Record<AssetStatus, number> = { processing: 0, ready: 0, failed: 0 };
    for (const row of rows) counts[row.status] = toNumber(row.n);
    return counts;
  }

  // --- projects ---------------------------------------------------------------------------------

  async createProject(project: Project): Promise<Project> {
    const row = toProjectRow(project);
    // `on conflict do nothing` + the row count, rather than catching a unique violation: the same
    // statement on both dialects, and a PostgreSQL transaction is never left aborted.
    const result = await this.#write((db) =>
      db
        .insertInto('projects')
        .values(row)
        .onConflict((oc) => oc.column('id').doNothing())
        .executeTakeFirst(),
    );
    if (Number(result.numInsertedOrUpdatedRows ?? 0n) === 0) {
      throw new AppError('PROJECT_EXISTS', `project ${project.id} already exists`);
    }
    return toProject(row);
  }

  async getProject(id: string): Promise<Project | undefined> {
    const row = await this.#db.selectFrom('projects').selectAll().where('id', '=', id).executeTakeFirst();
    return row === undefined ? undefined : toProject(row);
  }

  async listProjects(): Promise<Project[]> {
    const rows = await this.#db.selectFrom('projects').selectAll().orderBy('id', 'asc').execute();
    return rows.map(toProject);
  }

  async updateProject(id: string, patch: ProjectPatch, at: string): Promise<Project | undefined> {
    return this.writeTransaction(async (trx) => {
      const row = await trx
        .selectFrom('projects')
        .selectAll()
        .where('id', '=', id)
        .$if(this.dialect === 'postgres', (qb) => qb.forUpdate())
        .executeTakeFirst();
      if (row === undefined) return undefined;
      const stored = toProject(row);
      const updated: Project = {
        ...stored,
        name: patch.name ?? stored.name,
        visibility: patch.visibility ?? stored.visibility,
        duplicatePolicy: patch.duplicatePolicy ?? stored.duplicatePolicy,
        limits: mergeLimits(stored.limits, patch.limits),
        updatedAt: at,
      };
      const { id: _id, created_at: _createdAt, ...changes } = toProjectRow(updated);
      await trx.updateTable('projects').set(changes).where('id', '=', id).execute();
      return updated;
    });
  }

  async projectUsage(projectId: string): Promise<{ assets: number; bytes: number }> {
    const row = await this.#db
      .selectNoFrom((eb) => [
        eb
          .selectFrom('assets')
          .select((sub) => sub.fn.countAll<number | string | bigint>().as('n'))
          .where('project_id', '=', projectId)
          .as('assets'),
        eb
          .selectFrom('asset_versions as v')
          .innerJoin('assets as a', 'a.id', 'v.asset_id')
          .select((sub) => sub.fn.sum<number | string | bigint | null>('v.size').as('total'))
          .where('a.project_id', '=', projectId)
          .as('bytes'),
      ])
      .executeTakeFirstOrThrow();
    return { assets: toNumber(row.assets ?? 0), bytes: toNumber(row.bytes ?? 0) };
  }

  // --- api keys ---------------------------------------------------------------------------------

  async createApiKey(key: ApiKey): Promise<void> {
    await this.#write((db) =>
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

  async getApiKeyByPrefix(prefix: string): Promise<ApiKey | undefined> {
    const row = await this.#db
      .selectFrom('api_keys')
      .selectAll()
      .where('prefix', '=', prefix)
      .executeTakeFirst();
    return row === undefined ? undefined : toApiKey(row);
  }

  async listApiKeys(): Promise<ApiKey[]> {
    const rows = await this.#db
      .selectFrom('api_keys')
      .selectAll()
      .orderBy('created_at', 'asc')
      .orderBy('id', 'asc')
      .execute();
    return rows.map(toApiKey);
  }

  async revokeApiKey(id: string, at: string): Promise<boolean> {
    const result = await this.#write((db) =>
      db
        .updateTable('api_keys')
        .set({ revoked_at: at })
        .where('id', '=', id)
        .where('revoked_at', 'is', null)
        .executeTakeFirst(),
    );
    return Number(result.numUpdatedRows) > 0;
  }

  async touchApiKey(id: string, at: string): Promise<void> {
    try {
      await this.#write((db) =>
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

  // --- uploads ----------------------------------------------------------------------------------

  async createUpload(upload: UploadSession): Promise<void> {
    await this.#write((db) =>
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

  async getUpload(id: string): Promise<UploadSession | undefined> {
    const row = await this.#db.selectFrom('uploads').selectAll().where('id', '=', id).executeTakeFirst();
    return row === undefined ? undefined : toUpload(row);
  }

  async claimUploadCompletion(id: string): Promise<boolean> {
    // One conditional UPDATE: the database serialises concurrent claims on the row, and only the
    // first still sees `open`.
    const result = await this.#write((db) =>
      db
        .updateTable('uploads')
        .set({ state: 'completing' })
        .where('id', '=', id)
        .where('state', '=', 'open')
        .executeTakeFirst(),
    );
    return Number(result.numUpdatedRows) === 1;
  }

  async finishUpload(id: string, assetId: string): Promise<void> {
    const result = await this.#write((db) =>
      db
        .updateTable('uploads')
        .set({ state: 'completed', asset_id: assetId })
        .where('id', '=', id)
        .where('state', '=', 'completing')
        .executeTakeFirst(),
    );
    if (Number(result.numUpdatedRows) === 1) return;
    const upload = await this.getUpload(id);
    if (upload === undefined) throw new AppError('UPLOAD_NOT_FOUND', `upload ${id} not found`);
    // Finishing twice with the same asset (a retried call) is fine.
    if (upload.state === 'completed' && upload.assetId === assetId) return;
    throw new AppError('UPLOAD_CONFLICT', `upload ${id} is ${upload.state}, not completing`);
  }

  async reopenUpload(id: string): Promise<void> {
    // A compensating action: only a `completing` upload goes back to `open`; in any other state
    // (aborted meanwhile, unknown) there is nothing to undo.
    await this.#write((db) =>
      db
        .updateTable('uploads')
        .set({ state: 'open', asset_id: null })
        .where('id', '=', id)
        .where('state', '=', 'completing')
        .execute(),
    );
  }

  async abortUpload(id: string): Promise<boolean> {
    const result = await this.#write((db) =>
      db
        .updateTable('uploads')
        .set({ state: 'aborted' })
        .where('id', '=', id)
        .where('state', '<>', 'completed')
        .executeTakeFirst(),
    );
    return Number(result.numUpdatedRows) > 0;
  }

  async listExpiredUploads(at: string, limit: number): Promise<UploadSession[]> {
    const rows = await this.#db
      .selectFrom('uploads')
      .selectAll()
      .where('state', '=', 'open')
      .where('expires_at', '<', at)
      .orderBy('expires_at', 'asc')
      .orderBy('id', 'asc')
      .limit(limit)
      .execute();
    return rows.map(toUpload);
  }

  /**
   * Runs `fn` in one write transaction. SQLite: `BEGIN IMMEDIATE` takes the database write lock up
   * front (waiting up to busy_timeout), so a transaction that reads before it writes cannot fail with
   * SQLITE_BUSY when another process committed in between, as a deferred `BEGIN` would. PostgreSQL: a
   * normal transaction; rows read-then-updated are locked with `forUpdate`.
   *
   * `fn` must only use the `trx` it is given, and must not call back into this catalog.
   */
  private writeTransaction<T>(fn: (trx: Kysely<Database>) => Promise<T>): Promise<T> {
    if (this.dialect === 'postgres') return this.#db.transaction().execute(fn);
    return this.#writeLock(() =>
      this.#db.connection().execute(async (conn) => {
        await sql`begin immediate`.execute(conn);
        let result: T;
        try {
          result = await fn(conn);
          await sql`commit`.execute(conn);
        } catch (err) {
          await rollbackQuietly(conn);
          throw err;
        }
        return result;
      }),
    );
  }

  /** A single-statement write (autocommit), serialised with this process's other writers. */
  #write<T>(fn: (db: Kysely<Database>) => Promise<T>): Promise<T> {
    return this.#writeLock(() => fn(this.#db));
  }

  /**
   * Finishes the run, records the outcome on its version, and mirrors it onto the asset when that
   * version is current. PostgreSQL locks run, asset, then version: every transaction that touches an
   * asset and one of its versions takes the asset first, so two of them cannot deadlock.
   */
  async #finishRun(
    runId: string,
    at: string,
    runUpdate: { status: 'succeeded' | 'failed'; error: string | null },
    outcome: (stored: Outcome) => Outcome,
  ): Promise<void> {
    const lockRows = this.dialect === 'postgres';
    await this.writeTransaction(async (trx) => {
      const run = await trx
        .selectFrom('runs')
        .select(['asset_id', 'version'])
        .where('id', '=', runId)
        .$if(lockRows, (qb) => qb.forUpdate())
        .executeTakeFirst();
      if (run === undefined) throw new AppError('NOT_FOUND', `run ${runId} not found`);
      await trx
        .updateTable('runs')
        .set({ status: runUpdate.status, error: runUpdate.error, finished_at: at })
        .where('id', '=', runId)
        .execute();
      const asset = await trx
        .selectFrom('assets')
        .select(['current_version', 'extra'])
        .where('id', '=', run.asset_id)
        .$if(lockRows, (qb) => qb.forUpdate())
        .executeTakeFirst();
      const version = await trx
        .selectFrom('asset_versions')
        .selectAll()
        .where('asset_id', '=', run.asset_id)
        .where('version', '=', run.version)
        .$if(lockRows, (qb) => qb.forUpdate())
        .executeTakeFirst();
      if (version === undefined) return;
      const next = outcome(outcomeOf(version));
      await trx
        .updateTable('asset_versions')
        .set(next)
        .where('asset_id', '=', run.asset_id)
        .where('version', '=', run.version)
        .execute();
      // A late run of an older version never overwrites the record of the current one.
      if (asset === undefined || toNumber(asset.current_version) !== toNumber(run.version)) return;
      await trx
        .updateTable('assets')
        .set({ ...next, updated_at: at })
        .where('id', '=', run.asset_id)
        .where('current_version', '=', run.version)
        .execute();
      if (next.extra !== asset.extra) await this.#syncSearch(trx, run.asset_id);
    });
  }

  /** The asset row, locked on PostgreSQL; `ASSET_NOT_FOUND` if unknown or deleted. */
  async #lockLiveAsset(trx: Kysely<Database>, assetId: string): Promise<AssetRow> {
    const row = await trx
      .selectFrom('assets')
      .selectAll()
      .where('id', '=', assetId)
      .$if(this.dialect === 'postgres', (qb) => qb.forUpdate())
      .executeTakeFirst();
    if (row === undefined || row.deleted_at !== null) {
      throw new AppError('ASSET_NOT_FOUND', `asset ${assetId} not found`);
    }
    return row;
  }

  /**
   * Rewrites the asset's search document from its row, in the caller's transaction. Called by every
   * write that changes filename, tags or extra. SQLite's FTS5 index follows through triggers.
   */
  async #syncSearch(trx: Kysely<Database>, assetId: string): Promise<void> {
    const row = await trx
      .selectFrom('assets')
      .leftJoin('asset_search', 'asset_search.asset_id', 'assets.id')
      .select(['assets.filename', 'assets.tags', 'assets.extra', 'asset_search.words'])
      .where('assets.id', '=', assetId)
      .executeTakeFirst();
    if (row === undefined) return;
    const words = searchDocument(row);
    if (words === row.words) return;
    await trx
      .insertInto('asset_search')
      .values({ asset_id: assetId, words })
      .onConflict((oc) => oc.column('asset_id').doUpdateSet({ words }))
      .execute();
  }

  /** `assets.id` is one of the assets whose search document has every term as a word prefix. */
  #matchesSearch(terms: string[]): RawBuilder<SqlBool> {
    if (this.dialect === 'sqlite') {
      // FTS5 query syntax: each term a quoted string with a prefix star. Terms are letters and digits
      // only (see `searchWords`), so they can never carry FTS5 syntax or a quote.
      const match = terms.map((term) => `"${term}"*`).join(' AND ');
      return sql<SqlBool>`assets.id in (
        select s.asset_id from asset_search s
        where s.doc_id in (select rowid from assets_fts where assets_fts match ${match})
      )`;
    }
    // A tsquery literal (no parser, no normalisation: the terms are already normalised), each term
    // quoted as a lexeme with a prefix marker. The expression matches the GIN index of 0002.
    const query = terms
      .map((term) => `'${term.replaceAll("'", "''").replaceAll('\\', '\\\\')}':*`)
      .join(' & ');
    return sql<SqlBool>`assets.id in (
      select s.asset_id from asset_search s
      where array_to_tsvector(string_to_array(s.words, ' ')) @@ cast(${query} as tsquery)
    )`;
  }
}

function throwIfMigrationFailed(result: { error?: unknown }): void {
  if (result.error === undefined) return;
  if (result.error instanceof Error) throw result.error;
  throw new Error(`migration failed: ${String(result.error)}`);
}

async function rollbackQuietly(conn: Kysely<Database>): Promise<void> {
  try {
    await sql`rollback`.execute(conn);
  } catch {
    // SQLite may already have rolled back (e.g. after SQLITE_FULL); the original error matters.
  }
}

// --- row <-> record mapping ---------------------------------------------------------------------

function toNumber(value: number | string | bigint): number {
  return typeof value === 'number' ? value : Number(value);
}

function toNumberOrNull(value: number | string | bigint | null): number | null {
  return value === null ? null : toNumber(value);
}

function intOrNull(value: number | null | undefined): number | null {
  return value === null || value === undefined ? null : Math.round(value);
}

function durationMs(startedAt: string, finishedAt: string): number | null {
  const ms = Date.parse(finishedAt) - Date.parse(startedAt);
  return Number.isFinite(ms) ? Math.max(0, Math.round(ms)) : null;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseJsonObject(text: string | null): Record<string, unknown> {
  if (text === null || text === '') return {};
  try {
    const parsed: unknown = JSON.parse(text);
    return isPlainObject(parsed) ? parsed : {};
  } catch {
    return {};
  }
}

function parseJsonStringArray(text: string | null): string[] {
  if (text === null || text === '') return [];
  try {
    const parsed: unknown = JSON.parse(text);
    return Array.isArray(parsed) ? parsed.filter((item): item is string => typeof item === 'string') : [];
  } catch {
    return [];
  }
}

/** The processing outcome a version records and the asset mirrors for its current version. */
interface Outcome {
  status: AssetStatus;
  error: string | null;
  width: number | null;
  height: number | null;
  format: string | null;
  blurhash: string | null;
  duration_sec: number | null;
  extra: string;
  processed_at: string | null;
}

/** A version (or asset) that waits for its run: no outcome, no facts. */
const PROCESSING_OUTCOME = {
  status: 'processing',
  error: null,
  width: null,
  height: null,
  format: null,
  blurhash: null,
  duration_sec: null,
  extra: '{}',
  processed_at: null,
} as const satisfies Outcome;

function outcomeOf(row: Outcome): Outcome {
  return {
    status: row.status,
    error: row.error,
    width: row.width,
    height: row.height,
    format: row.format,
    blurhash: row.blurhash,
    duration_sec: row.duration_sec,
    extra: row.extra,
    processed_at: row.processed_at,
  };
}

function queuedRun(id: string, assetId: string, version: number, kind: MediaType, at: string): RunRow {
  return {
    id,
    asset_id: assetId,
    version,
    kind,
    status: 'queued',
    error: null,
    attempts: 0,
    created_at: at,
    started_at: null,
    finished_at: null,
  };
}

async function selectAsset(db: Kysely<Database>, id: string): Promise<Asset> {
  return toAsset(await db.selectFrom('assets').selectAll().where('id', '=', id).executeTakeFirstOrThrow());
}

const MEDIA_ID_INDEX = 'assets_project_media_id_uidx';

/** A unique violation of "one live asset per (project, media id)", from either driver. */
function isMediaIdConflict(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const { code, constraint } = err as Error & { code?: unknown; constraint?: unknown };
  if (code === '23505') return constraint === MEDIA_ID_INDEX;
  return code === 'SQLITE_CONSTRAINT_UNIQUE' && err.message.includes('assets.project_id, assets.media_id');
}

function toAsset(row: AssetRow): Asset {
  return {
    id: row.id,
    projectId: row.project_id,
    filename: row.filename,
    type: row.type,
    mimeType: row.mime_type,
    size: toNumber(row.size),
    sha256: row.sha256,
    status: row.status,
    error: row.error,
    width: toNumberOrNull(row.width),
    height: toNumberOrNull(row.height),
    format: row.format,
    blurhash: row.blurhash,
    durationSec: toNumberOrNull(row.duration_sec),
    versionNumber: toNumber(row.current_version),
    uploadedAt: row.uploaded_at,
    processedAt: row.processed_at,
    extra: parseJsonObject(row.extra),
    mediaId: row.media_id,
    tags: parseJsonStringArray(row.tags),
    duplicateOf: row.duplicate_of,
    deletedAt: row.deleted_at,
  };
}

function toAssetVersion(row: AssetVersionRow): AssetVersion {
  return {
    assetId: row.asset_id,
    version: toNumber(row.version),
    originalKey: row.original_key,
    filename: row.filename,
    type: row.type,
    mimeType: row.mime_type,
    size: toNumber(row.size),
    sha256: row.sha256,
    createdAt: row.created_at,
    status: row.status,
    error: row.error,
    width: toNumberOrNull(row.width),
    height: toNumberOrNull(row.height),
    format: row.format,
    blurhash: row.blurhash,
    durationSec: toNumberOrNull(row.duration_sec),
    extra: parseJsonObject(row.extra),
    processedAt: row.processed_at,
  };
}

function toRun(row: RunRow): Run {
  return {
    id: row.id,
    assetId: row.asset_id,
    version: toNumber(row.version),
    kind: row.kind,
    status: row.status,
    error: row.error,
    attempts: toNumber(row.attempts),
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
  };
}

function toStep(row: StepRow): StepRecord {
  return {
    id: row.id,
    runId: row.run_id,
    name: row.name,
    attempt: toNumber(row.attempt),
    status: row.status,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    durationMs: toNumberOrNull(row.duration_ms),
    error: row.error,
    output: row.output === null ? null : parseJsonObject(row.output),
  };
}

function toRendition(row: RenditionRow): Rendition {
  return {
    assetId: row.asset_id,
    version: toNumber(row.version),
    name: row.name,
    key: row.key,
    contentType: row.content_type,
    size: toNumber(row.size),
    width: toNumberOrNull(row.width),
    height: toNumberOrNull(row.height),
    createdAt: row.created_at,
  };
}

function toProject(row: ProjectRow): Project {
  return {
    id: row.id,
    name: row.name,
    visibility: row.visibility,
    duplicatePolicy: row.duplicate_policy,
    limits: {
      maxUploadBytes: toNumberOrNull(row.max_upload_bytes),
      maxTotalBytes: toNumberOrNull(row.max_total_bytes),
      maxVideoDurationSec: toNumberOrNull(row.max_video_duration_sec),
      allowedTypes:
        row.allowed_types === null ? null : (parseJsonStringArray(row.allowed_types) as MediaType[]),
    },
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function toProjectRow(project: Project): {
  [K in keyof ProjectsTable]: K extends 'max_upload_bytes' | 'max_total_bytes'
    ? number | null
    : ProjectRow[K];
} {
  return {
    id: project.id,
    name: project.name,
    visibility: project.visibility,
    duplicate_policy: project.duplicatePolicy,
    max_upload_bytes: project.limits.maxUploadBytes,
    max_total_bytes: project.limits.maxTotalBytes,
    max_video_duration_sec: project.limits.maxVideoDurationSec,
    allowed_types: project.limits.allowedTypes === null ? null : JSON.stringify(project.limits.allowedTypes),
    created_at: project.createdAt,
    updated_at: project.updatedAt,
  };
}

/** Keys absent (or `undefined`) in `patch` keep their limit; `null` clears it. */
function mergeLimits(stored: ProjectLimits, patch: Partial<ProjectLimits> | undefined): ProjectLimits {
  if (patch === undefined) return stored;
  return {
    maxUploadBytes: patch.maxUploadBytes === undefined ? stored.maxUploadBytes : patch.maxUploadBytes,
    maxTotalBytes: patch.maxTotalBytes === undefined ? stored.maxTotalBytes : patch.maxTotalBytes,
    maxVideoDurationSec:
      patch.maxVideoDurationSec === undefined ? stored.maxVideoDurationSec : patch.maxVideoDurationSec,
    allowedTypes: patch.allowedTypes === undefined ? stored.allowedTypes : patch.allowedTypes,
  };
}

function toApiKey(row: ApiKeyRow): ApiKey {
  return {
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    secretHash: row.secret_hash,
    scopes: parseJsonStringArray(row.scopes) as Scope[],
    projectId: row.project_id,
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
    revokedAt: row.revoked_at,
  };
}

function toUpload(row: UploadRow): UploadSession {
  return {
    id: row.id,
    protocol: row.protocol,
    projectId: row.project_id,
    mediaId: row.media_id,
    filename: row.filename,
    declaredType: row.declared_type,
    size: toNumberOrNull(row.size),
    key: row.key,
    storeUploadId: row.store_upload_id,
    checksum: row.checksum,
    state: row.state,
    assetId: row.asset_id,
    createdBy: row.created_by,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
  };
}

// --- full-text search ---------------------------------------------------------------------------

/** Longer words are cut (index and query alike): a prefix match still finds them. */
const MAX_WORD_CHARS = 64;
/** Bounds one asset's search document (a huge `extra` cannot bloat the index). */
const MAX_DOCUMENT_WORDS = 2000;
/** Words of a query beyond this are ignored. */
const MAX_QUERY_WORDS = 32;
/** Nested `extra` values deeper than this are not indexed. */
const MAX_METADATA_DEPTH = 8;

function foldText(text: string): string {
  return text.normalize('NFKD').replace(/\p{M}+/gu, '');
}

/**
 * The words of `text` as the search index and queries see them: maximal runs of letters and digits,
 * lower-cased, with diacritics removed (`Café-2024.JPG` -> `cafe`, `2024`, `jpg`). Everything else
 * separates words, so the result never contains quotes, operators or whitespace.
 */
export function searchWords(text: string): string[] {
  // Fold, lower-case, fold again: lower-casing can produce combining marks (`İ` -> `i̇`).
  const folded = foldText(foldText(text).toLowerCase());
  const words: string[] = [];
  for (const word of folded.split(/[^\p{L}\p{N}]+/u)) {
    if (word === '') continue;
    const chars = Array.from(word);
    words.push(chars.length > MAX_WORD_CHARS ? chars.slice(0, MAX_WORD_CHARS).join('') : word);
  }
  return words;
}

/**
 * An asset's search document (`asset_search.words`): the distinct words of its filename, its tags
 * and the string values of its metadata, separated by single spaces.
 */
export function searchDocument(asset: { filename: string; tags: string; extra: string }): string {
  const words = new Set<string>();
  const add = (text: string): void => {
    for (const word of searchWords(text)) {
      if (words.size >= MAX_DOCUMENT_WORDS) return;
      words.add(word);
    }
  };
  add(asset.filename);
  for (const tag of parseJsonStringArray(asset.tags)) add(tag);
  const visit = (value: unknown, depth: number): void => {
    if (typeof value === 'string') add(value);
    else if (depth >= MAX_METADATA_DEPTH || typeof value !== 'object' || value === null) return;
    else for (const item of Array.isArray(value) ? value : Object.values(value)) visit(item, depth + 1);
  };
  visit(parseJsonObject(asset.extra), 0);
  return [...words].join(' ');
}

/** The distinct words of a query, each to be matched as a prefix. */
function searchTerms(q: string): string[] {
  return [...new Set(searchWords(q))].slice(0, MAX_QUERY_WORDS);
}
