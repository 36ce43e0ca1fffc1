import { type Kysely, type Migration, type MigrationProvider, Migrator, sql } from 'kysely';
import type { ApiKey } from '../domain/api-key.js';
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
import type { Project } from '../domain/project.js';
import type { UploadSession } from '../domain/upload.js';
import type { WriteLock } from '../lib/sqlite-write-lock.js';
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
  SimilarAsset,
  SimilarQuery,
} from './catalog.js';
import * as apiKeys from './queries/api-keys.js';
import * as assets from './queries/assets.js';
import * as leases from './queries/leases.js';
import * as projects from './queries/projects.js';
import * as runs from './queries/runs.js';
import * as similar from './queries/similar.js';
import * as uploads from './queries/uploads.js';
import * as versions from './queries/versions.js';
import type { Database } from './schema.js';
import { type CatalogDb, type CatalogDialect, passThrough, writeTransaction } from './write-transaction.js';

export { searchDocument, searchWords } from './queries/search.js';
/** Runs `fn` while holding a lock; see `KyselyCatalogOptions.writeLock`. */
export type { CatalogDialect, WriteLock };

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

/**
 * The catalog over Kysely: one set of queries for SQLite and PostgreSQL, in `queries/` by table.
 * Dialect differences are confined to `migrate`, `writeTransaction` (write-transaction.ts), row
 * locking (`lockRows`, PostgreSQL only) and the full-text match (`matchesSearch` in
 * queries/search.ts). Where the port (catalog.ts) leaves a case open, the query module that
 * implements it says how this adapter decides.
 */
export class KyselyCatalog implements Catalog {
  readonly dialect: CatalogDialect;
  readonly #db: Kysely<Database>;
  readonly #migrations: Record<string, Migration>;
  /** The handle the query modules write through. */
  readonly #cdb: CatalogDb;

  constructor(
    db: Kysely<Database>,
    dialect: CatalogDialect,
    migrations: Record<string, Migration>,
    options: KyselyCatalogOptions = {},
  ) {
    this.#db = db;
    this.dialect = dialect;
    this.#migrations = migrations;
    this.#cdb = { db, dialect, writeLock: options.writeLock ?? passThrough };
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
      await writeTransaction(this.#cdb, async (conn) => {
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
    for (let attempt = 1; ; attempt++) {
      try {
        throwIfMigrationFailed(await migrator.migrateToLatest());
        return;
      } catch (err) {
        if (attempt >= MIGRATE_ATTEMPTS || !isOtherSchemaDropped(err, schema)) throw err;
      }
    }
  }

  async close(): Promise<void> {
    await this.#db.destroy();
  }

  async ping(): Promise<void> {
    await sql`select 1`.execute(this.#db);
  }

  // --- assets -----------------------------------------------------------------------------------

  async createAssetWithRun(asset: NewAsset, runId: string): Promise<{ asset: Asset; run: Run }> {
    return assets.createAssetWithRun(this.#cdb, asset, runId);
  }

  async findAssetByMediaId(projectId: string, mediaId: string): Promise<Asset | undefined> {
    return assets.findAssetByMediaId(this.#db, projectId, mediaId);
  }

  async findAssetsBySha256(projectId: string, sha256: string): Promise<Asset[]> {
    return assets.findAssetsBySha256(this.#db, projectId, sha256);
  }

  async updateAsset(id: string, patch: AssetPatch, at: string): Promise<Asset | undefined> {
    return assets.updateAsset(this.#cdb, id, patch, at);
  }

  async softDeleteAsset(id: string, at: string): Promise<boolean> {
    return assets.softDeleteAsset(this.#cdb, id, at);
  }

  async restoreAsset(id: string, at: string): Promise<boolean> {
    return assets.restoreAsset(this.#cdb, id, at);
  }

  async listAssetsDeletedBefore(at: string, limit: number): Promise<Asset[]> {
    return assets.listAssetsDeletedBefore(this.#db, at, limit);
  }

  async purgeAsset(id: string): Promise<{ keys: string[] }> {
    return assets.purgeAsset(this.#cdb, id);
  }

  async getAsset(id: string): Promise<Asset | undefined> {
    return assets.getAsset(this.#db, id);
  }

  async listAssets(filter: AssetFilter): Promise<AssetPage> {
    return assets.listAssets(this.#db, this.dialect, filter);
  }

  async countAssetsByStatus(): Promise<Record<AssetStatus, number>> {
    return assets.countAssetsByStatus(this.#db);
  }

  // --- versions ---------------------------------------------------------------------------------

  async createVersionWithRun(version: NewVersion, runId: string): Promise<{ asset: Asset; run: Run }> {
    return versions.createVersionWithRun(this.#cdb, version, runId);
  }

  async listVersions(assetId: string): Promise<AssetVersion[]> {
    return versions.listVersions(this.#db, assetId);
  }

  async setCurrentVersion(assetId: string, version: number, at: string): Promise<Asset> {
    return versions.setCurrentVersion(this.#cdb, assetId, version, at);
  }

  async getVersion(assetId: string, version: number): Promise<AssetVersion | undefined> {
    return versions.getVersion(this.#db, assetId, version);
  }

  async findVersionByOriginalKey(key: string): Promise<AssetVersion | undefined> {
    return versions.findVersionByOriginalKey(this.#db, key);
  }

  async findSimilar(assetId: string, query: SimilarQuery): Promise<SimilarAsset[] | undefined> {
    return similar.findSimilar(this.#db, assetId, query);
  }

  // --- runs, steps, renditions ------------------------------------------------------------------

  async createRun(assetId: string, runId: string, at: string): Promise<Run> {
    return runs.createRun(this.#cdb, assetId, runId, at);
  }

  async getRun(runId: string): Promise<Run | undefined> {
    return runs.getRun(this.#db, runId);
  }

  async listRunsWithSteps(assetId: string): Promise<RunWithSteps[]> {
    return runs.listRunsWithSteps(this.#db, assetId);
  }

  async listUnfinishedRuns(limit: number): Promise<Run[]> {
    return runs.listUnfinishedRuns(this.#db, limit);
  }

  async setRunProgress(runId: string, percent: number): Promise<void> {
    return runs.setRunProgress(this.#cdb, runId, percent);
  }

  async startRun(runId: string, at: string): Promise<Run> {
    return runs.startRun(this.#cdb, runId, at);
  }

  async publishRun(runId: string, facts: AssetFacts, at: string): Promise<void> {
    return runs.publishRun(this.#cdb, runId, facts, at);
  }

  async failRun(runId: string, reason: string, at: string): Promise<void> {
    return runs.failRun(this.#cdb, runId, reason, at);
  }

  async startStep(step: {
    id: string;
    runId: string;
    name: string;
    attempt: number;
    startedAt: string;
  }): Promise<void> {
    return runs.startStep(this.#cdb, step);
  }

  async finishStep(stepId: string, finish: FinishStep): Promise<void> {
    return runs.finishStep(this.#cdb, stepId, finish);
  }

  async listSteps(runId: string): Promise<StepRecord[]> {
    return runs.listSteps(this.#db, runId);
  }

  async abandonRunningSteps(runId: string, at: string, reason: string): Promise<number> {
    return runs.abandonRunningSteps(this.#cdb, runId, at, reason);
  }

  async putRendition(rendition: NewRendition): Promise<void> {
    return runs.putRendition(this.#cdb, rendition);
  }

  async listRenditions(assetId: string, version: number): Promise<Rendition[]> {
    return runs.listRenditions(this.#db, assetId, version);
  }

  // --- projects ---------------------------------------------------------------------------------

  async createProject(project: Project): Promise<Project> {
    return projects.createProject(this.#cdb, project);
  }

  async getProject(id: string): Promise<Project | undefined> {
    return projects.getProject(this.#db, id);
  }

  async listProjects(): Promise<Project[]> {
    return projects.listProjects(this.#db);
  }

  async updateProject(id: string, patch: ProjectPatch, at: string): Promise<Project | undefined> {
    return projects.updateProject(this.#cdb, id, patch, at);
  }

  async projectUsage(projectId: string): Promise<{ assets: number; bytes: number }> {
    return projects.projectUsage(this.#db, projectId);
  }

  // --- api keys ---------------------------------------------------------------------------------

  async createApiKey(key: ApiKey): Promise<void> {
    return apiKeys.createApiKey(this.#cdb, key);
  }

  async getApiKeyByPrefix(prefix: string): Promise<ApiKey | undefined> {
    return apiKeys.getApiKeyByPrefix(this.#db, prefix);
  }

  async listApiKeys(): Promise<ApiKey[]> {
    return apiKeys.listApiKeys(this.#db);
  }

  async revokeApiKey(id: string, at: string): Promise<boolean> {
    return apiKeys.revokeApiKey(this.#cdb, id, at);
  }

  async touchApiKey(id: string, at: string): Promise<void> {
    return apiKeys.touchApiKey(this.#cdb, id, at);
  }

  // --- uploads ----------------------------------------------------------------------------------

  async createUpload(upload: UploadSession): Promise<void> {
    return uploads.createUpload(this.#cdb, upload);
  }

  async getUpload(id: string): Promise<UploadSession | undefined> {
    return uploads.getUpload(this.#db, id);
  }

  async claimUploadCompletion(id: string, claim?: { at: string; staleBefore: string }): Promise<boolean> {
    return uploads.claimUploadCompletion(this.#cdb, id, claim);
  }

  async finishUpload(id: string, assetId: string): Promise<void> {
    return uploads.finishUpload(this.#cdb, id, assetId);
  }

  async reopenUpload(id: string): Promise<void> {
    return uploads.reopenUpload(this.#cdb, id);
  }

  async abortUpload(id: string): Promise<boolean> {
    return uploads.abortUpload(this.#cdb, id);
  }

  async listExpiredUploads(at: string, limit: number, staleBefore?: string): Promise<UploadSession[]> {
    return uploads.listExpiredUploads(this.#db, at, limit, staleBefore);
  }

  async acquireLease(name: string, holder: string, at: string, expiresAt: string): Promise<boolean> {
    return leases.acquireLease(this.#cdb, name, holder, at, expiresAt);
  }

  async renewLease(
    name: string,
    holder: string,
    expiresAt: string,
  ): Promise<{ held: boolean; releaseRequested: boolean }> {
    return leases.renewLease(this.#cdb, name, holder, expiresAt);
  }

  async requestLeaseRelease(name: string): Promise<void> {
    return leases.requestLeaseRelease(this.#cdb, name);
  }

  async releaseLease(name: string, holder: string): Promise<void> {
    return leases.releaseLease(this.#cdb, name, holder);
  }

  async deleteExpiredLeases(at: string): Promise<number> {
    return leases.deleteExpiredLeases(this.#cdb, at);
  }
}

/**
 * Kysely's migrator looks for its own tables by listing the tables of every schema in the database
 * (checking each schema's privileges); another application dropping a schema at that moment fails
 * the listing with "schema ... does not exist" (3F000) for a schema that is not ours. The migration
 * runs in a transaction, so it is simply tried again.
 */
const MIGRATE_ATTEMPTS = 10;

function isOtherSchemaDropped(err: unknown, ours: string): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const { code, message } = err as { code?: unknown; message?: unknown };
  return code === '3F000' && typeof message === 'string' && !message.includes(`"${ours}"`);
}

function throwIfMigrationFailed(result: { error?: unknown }): void {
  if (result.error === undefined) return;
  if (result.error instanceof Error) throw result.error;
  throw new Error(`migration failed: ${String(result.error)}`);
}
