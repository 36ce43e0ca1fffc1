import { type Kysely, type Migration, type MigrationProvider, Migrator, sql, type Updateable } from 'kysely';
import type {
  Asset,
  AssetFacts,
  AssetStatus,
  AssetVersion,
  Rendition,
  Run,
  RunWithSteps,
  StepRecord,
} from '../domain/asset.js';
import { AppError } from '../errors.js';
import type { AssetFilter, AssetPage, Catalog, FinishStep, NewAsset, NewRendition } from './catalog.js';
import type {
  AssetRow,
  AssetsTable,
  AssetVersionRow,
  Database,
  RenditionRow,
  RunRow,
  StepRow,
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
 * confined to `migrate`, `writeTransaction` and row locking (`forUpdate`, PostgreSQL only).
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
    } satisfies AssetVersionRow;
    const runRow = {
      id: runId,
      asset_id: asset.id,
      version: 1,
      kind: asset.type,
      status: 'queued',
      error: null,
      attempts: 0,
      created_at: asset.uploadedAt,
      started_at: null,
      finished_at: null,
    } satisfies RunRow;
    await this.writeTransaction(async (trx) => {
      await trx.insertInto('assets').values(assetRow).execute();
      await trx.insertInto('asset_versions').values(versionRow).execute();
      await trx.insertInto('runs').values(runRow).execute();
    });
    return { asset: toAsset(assetRow), run: toRun(runRow) };
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
    if (filter.projectId !== undefined) query = query.where('project_id', '=', filter.projectId);
    if (filter.type !== undefined) query = query.where('type', '=', filter.type);
    if (filter.status !== undefined) query = query.where('status', '=', filter.status);
    if (filter.beforeId !== undefined) query = query.where('id', '<', filter.beforeId);
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
    await this.#finishRun(runId, at, { status: 'succeeded', error: null }, (stored) => {
      const update: Updateable<AssetsTable> = {
        status: 'ready',
        error: null,
        processed_at: at,
        updated_at: at,
      };
      // Absent facts keep the stored value; an explicit null clears it.
      if (facts.width !== undefined) update.width = intOrNull(facts.width);
      if (facts.height !== undefined) update.height = intOrNull(facts.height);
      if (facts.format !== undefined) update.format = facts.format;
      if (facts.blurhash !== undefined) update.blurhash = facts.blurhash;
      if (facts.durationSec !== undefined) update.duration_sec = facts.durationSec;
      if (facts.extra !== undefined) {
        update.extra = JSON.stringify({ ...parseJsonObject(stored.extra), ...facts.extra });
      }
      return update;
    });
  }

  async failRun(runId: string, reason: string, at: string): Promise<void> {
    await this.#finishRun(runId, at, { status: 'failed', error: reason }, () => ({
      status: 'failed',
      error: reason,
      processed_at: at,
      updated_at: at,
    }));
  }

  async countAssetsByStatus(): Promise<Record<AssetStatus, number>> {
    const rows = await this.#db
      .selectFrom('assets')
      .select((eb) => ['status', eb.fn.countAll<number | string | bigint>().as('n')])
      .groupBy('status')
      .execute();
    const counts: Record<AssetStatus, number> = { processing: 0, ready: 0, failed: 0 };
    for (const row of rows) counts[row.status] = toNumber(row.n);
    return counts;
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

  async #finishRun(
    runId: string,
    at: string,
    runUpdate: { status: 'succeeded' | 'failed'; error: string | null },
    assetUpdate: (stored: { extra: string }) => Updateable<AssetsTable>,
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
      // A late run of an older version never overwrites the facts of the current one.
      if (asset === undefined || toNumber(asset.current_version) !== toNumber(run.version)) return;
      await trx
        .updateTable('assets')
        .set(assetUpdate(asset))
        .where('id', '=', run.asset_id)
        .where('current_version', '=', run.version)
        .execute();
    });
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
  };
}

function toAssetVersion(row: AssetVersionRow): AssetVersion {
  return {
    assetId: row.asset_id,
    version: toNumber(row.version),
    originalKey: row.original_key,
    filename: row.filename,
    mimeType: row.mime_type,
    size: toNumber(row.size),
    sha256: row.sha256,
    createdAt: row.created_at,
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
