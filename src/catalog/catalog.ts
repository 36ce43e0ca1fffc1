import type { ApiKey } from '../domain/api-key.js';
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
  StepStatus,
} from '../domain/asset.js';
import type { Project } from '../domain/project.js';
import type { UploadSession } from '../domain/upload.js';

export interface NewAsset {
  id: string;
  projectId: string;
  filename: string;
  type: MediaType;
  mimeType: string;
  size: number;
  sha256: string;
  originalKey: string;
  /** ISO timestamp; the adapter uses it as given so callers (and tests) control the clock. */
  uploadedAt: string;
  mediaId?: string | null | undefined;
  tags?: string[] | undefined;
  duplicateOf?: string | null | undefined;
}

/** The bytes of a new version of an existing asset. */
export interface NewVersion {
  assetId: string;
  filename: string;
  type: MediaType;
  mimeType: string;
  size: number;
  sha256: string;
  originalKey: string;
  createdAt: string;
  duplicateOf?: string | null | undefined;
}

export interface AssetPatch {
  tags?: string[] | undefined;
  filename?: string | undefined;
}

export interface ProjectPatch {
  name?: string | undefined;
  visibility?: Project['visibility'] | undefined;
  duplicatePolicy?: Project['duplicatePolicy'] | undefined;
  limits?: Partial<Project['limits']> | undefined;
  exposeGps?: boolean | undefined;
}

/**
 * The largest `maxDistance` a near-duplicate search accepts: the index looks up floor(d / 4) bits of
 * difference per 16-bit band, 697 values per band at 12; beyond that the look-ups grow quickly (2,517
 * per band at 16) and, on 64-bit pHashes, unrelated pictures start to match.
 */
export const MAX_SIMILAR_DISTANCE = 12;
/** The most near-duplicates one search returns. */
export const MAX_SIMILAR_LIMIT = 100;

export interface SimilarQuery {
  /** Largest Hamming distance (bits of 64) to include, 0..MAX_SIMILAR_DISTANCE. */
  maxDistance: number;
  /** Most results, 1..MAX_SIMILAR_LIMIT. */
  limit: number;
}

export interface SimilarAsset {
  asset: Asset;
  /** Bits (0..64) in which the two perceptual hashes differ. */
  distance: number;
}

export interface AssetFilter {
  projectId?: string | undefined;
  type?: MediaType | undefined;
  status?: AssetStatus | undefined;
  /** Page size, 1..1000. */
  limit: number;
  /** Return assets strictly older than this id (ids sort by creation time). */
  beforeId?: string | undefined;
  mediaId?: string | undefined;
  /**
   * Full-text search over filename, tags and metadata: every word must match (as a prefix),
   * case-insensitively. SQLite: FTS5; PostgreSQL: full-text search.
   */
  q?: string | undefined;
  /** Only deleted assets (in their grace period) instead of live ones. @default false */
  deleted?: boolean | undefined;
}

export interface AssetPage {
  items: Asset[];
  /** The id to pass as `beforeId` for the next page, or `null` at the end. */
  nextBeforeId: string | null;
}

export interface FinishStep {
  status: Exclude<StepStatus, 'running'>;
  finishedAt: string;
  error?: string | null | undefined;
  output?: Record<string, unknown> | null | undefined;
}

export interface NewRendition {
  assetId: string;
  version: number;
  name: string;
  key: string;
  contentType: string;
  size: number;
  width?: number | null | undefined;
  height?: number | null | undefined;
  createdAt: string;
}

/**
 * The catalog port: every fact about assets, versions, renditions and pipeline runs.
 *
 * Contract (proved for every adapter by `test/contract/catalog.contract.ts`):
 * - `createAssetWithRun` writes the asset, its version 1 and a `queued` run in one transaction;
 * - `publishRun` and `failRun` are atomic and only touch the asset when the run's version is the
 *   asset's current version (a late run of an old version never overwrites a newer one);
 * - lookups of unknown ids return `undefined`, never throw;
 * - times are ISO-8601 strings in UTC, as given by the caller.
 */
export interface Catalog {
  /** Applies pending migrations; safe to call from several processes at once. */
  migrate(): Promise<void>;
  close(): Promise<void>;
  /** A cheap round trip, for `/readyz`. */
  ping(): Promise<void>;

  createAssetWithRun(asset: NewAsset, runId: string): Promise<{ asset: Asset; run: Run }>;
  /**
   * Adds version N+1 (N = the highest so far) with a queued run, in one transaction, and makes it
   * current: the asset mirrors its file fields, becomes `processing`, its facts are cleared.
   * Throws `AppError('ASSET_NOT_FOUND')` for an unknown or deleted asset.
   */
  createVersionWithRun(version: NewVersion, runId: string): Promise<{ asset: Asset; run: Run }>;
  /** Oldest first, each with the outcome of its latest run. */
  listVersions(assetId: string): Promise<AssetVersion[]>;
  /**
   * Makes an earlier (or the latest) version current again: the asset mirrors that version's file
   * fields, status, error and facts. Throws `AppError('NOT_FOUND')` for an unknown version.
   */
  setCurrentVersion(assetId: string, version: number, at: string): Promise<Asset>;
  /** Reprocess: a new queued run for the current version; the asset becomes `processing`. */
  createRun(assetId: string, runId: string, at: string): Promise<Run>;
  /** Live (not deleted) asset with this media id in the project. */
  findAssetByMediaId(projectId: string, mediaId: string): Promise<Asset | undefined>;
  /** Live assets of the project whose current version has these bytes, oldest first. */
  findAssetsBySha256(projectId: string, sha256: string): Promise<Asset[]>;
  updateAsset(id: string, patch: AssetPatch, at: string): Promise<Asset | undefined>;
  /** Hides the asset (it can be restored until purged). Returns false if unknown or already deleted. */
  softDeleteAsset(id: string, at: string): Promise<boolean>;
  restoreAsset(id: string, at: string): Promise<boolean>;
  /** Deleted assets whose `deletedAt` is before `at`: ready to purge. */
  listAssetsDeletedBefore(at: string, limit: number): Promise<Asset[]>;
  /** Removes every row of the asset; returns the blob keys of all its versions and renditions. */
  purgeAsset(id: string): Promise<{ keys: string[] }>;

  /** Includes deleted assets (check `deletedAt`). */
  getAsset(id: string): Promise<Asset | undefined>;
  listAssets(filter: AssetFilter): Promise<AssetPage>;
  getVersion(assetId: string, version: number): Promise<AssetVersion | undefined>;
  /**
   * The version whose original is stored under `key` (keys are unique per upload), whatever the
   * state of its asset: the caller checks the asset (deleted, project, current version).
   */
  findVersionByOriginalKey(key: string): Promise<AssetVersion | undefined>;

  /**
   * Near-duplicates of an asset: the live (not deleted), `ready` images of its project whose current
   * perceptual hash is within `maxDistance` bits of the asset's own, nearest first, equal distances by
   * id, at most `limit`; the asset itself is never listed. `undefined` for an unknown asset, `[]` for
   * an asset without a perceptual hash. Throws `AppError('VALIDATION_FAILED')` for `maxDistance`
   * outside 0..MAX_SIMILAR_DISTANCE or `limit` outside 1..MAX_SIMILAR_LIMIT. Answered from an index
   * in the database (no process memory), fast for a million images in one project.
   */
  findSimilar(assetId: string, query: SimilarQuery): Promise<SimilarAsset[] | undefined>;

  getRun(runId: string): Promise<Run | undefined>;
  /** Runs of one asset, newest first, each with its steps in the order they started. */
  listRunsWithSteps(assetId: string): Promise<RunWithSteps[]>;
  /** Runs that are `queued` or `running`: the recovery sweep makes sure each has a job. */
  listUnfinishedRuns(limit: number): Promise<Run[]>;
  /** Moves the run to `running` and counts the attempt. */
  startRun(runId: string, at: string): Promise<Run>;
  /** Records how far an unfinished run is (0-100); never lowers it; ignored for a finished run. */
  setRunProgress(runId: string, percent: number): Promise<void>;

  startStep(step: {
    id: string;
    runId: string;
    name: string;
    attempt: number;
    startedAt: string;
  }): Promise<void>;
  finishStep(stepId: string, finish: FinishStep): Promise<void>;
  listSteps(runId: string): Promise<StepRecord[]>;
  /** Marks steps left `running` by a dead worker as `abandoned`. */
  abandonRunningSteps(runId: string, at: string, reason: string): Promise<number>;

  /** Records an output; the same (asset, version, name) replaces the previous row (idempotent). */
  putRendition(rendition: NewRendition): Promise<void>;
  listRenditions(assetId: string, version: number): Promise<Rendition[]>;

  /**
   * Run succeeded: the run's version records `ready` with `facts`; if it is the current version,
   * the asset too, atomically. A `perceptualHash` that is not 16 lowercase hex digits throws
   * `AppError('VALIDATION_FAILED')` and changes nothing.
   */
  publishRun(runId: string, facts: AssetFacts, at: string): Promise<void>;
  /** Run failed for good: its version, and the asset if current, become `failed` with `reason`. */
  failRun(runId: string, reason: string, at: string): Promise<void>;

  /** Asset counts per status, for metrics and admin stats. */
  countAssetsByStatus(): Promise<Record<AssetStatus, number>>;

  /** Throws `AppError('PROJECT_EXISTS')` when the id is taken. The migration creates `default`. */
  createProject(project: Project): Promise<Project>;
  getProject(id: string): Promise<Project | undefined>;
  listProjects(): Promise<Project[]>;
  updateProject(id: string, patch: ProjectPatch, at: string): Promise<Project | undefined>;
  /** Assets (deleted ones in their grace period included) and the bytes of all their versions. */
  projectUsage(projectId: string): Promise<{ assets: number; bytes: number }>;

  createApiKey(key: ApiKey): Promise<void>;
  getApiKeyByPrefix(prefix: string): Promise<ApiKey | undefined>;
  listApiKeys(): Promise<ApiKey[]>;
  /** Returns false for an unknown or already revoked key. */
  revokeApiKey(id: string, at: string): Promise<boolean>;
  /** Records use (best-effort; callers may not await it). */
  touchApiKey(id: string, at: string): Promise<void>;

  createUpload(upload: UploadSession): Promise<void>;
  getUpload(id: string): Promise<UploadSession | undefined>;
  /**
   * Moves an `open` upload to `completing`; true for exactly one caller. With `claim`, the claim is
   * timed at `claim.at`, and a `completing` upload claimed before `claim.staleBefore` (or untimed)
   * can be claimed again: its completion died with its process.
   */
  claimUploadCompletion(id: string, claim?: { at: string; staleBefore: string }): Promise<boolean>;
  /** `completing` -> `completed` with the resulting asset. */
  finishUpload(id: string, assetId: string): Promise<void>;
  /** `completing` -> `open` again (the completion failed in a way the client may retry). */
  reopenUpload(id: string): Promise<void>;
  /** Any state but `completed` -> `aborted`. Returns false if unknown or completed. */
  abortUpload(id: string): Promise<boolean>;
  /** `open` uploads whose `expiresAt` is before `at`; with `staleBefore`, also stale claims (see above). */
  listExpiredUploads(at: string, limit: number, staleBefore?: string): Promise<UploadSession[]>;

  /**
   * Named leases: a lock that every process on this database sees (tus uploads' requests on
   * several API nodes). `acquireLease` is true for exactly one of competing holders while the lease
   * is free or expired (`expiresAt` before `at`); the holder keeps it with `renewLease`, which also
   * says whether it is still the holder and whether another process asked for the lease
   * (`requestLeaseRelease`); `releaseLease` by anyone but the holder changes nothing.
   */
  acquireLease(name: string, holder: string, at: string, expiresAt: string): Promise<boolean>;
  renewLease(
    name: string,
    holder: string,
    expiresAt: string,
  ): Promise<{ held: boolean; releaseRequested: boolean }>;
  requestLeaseRelease(name: string): Promise<void>;
  releaseLease(name: string, holder: string): Promise<void>;
  /** Forgets leases that expired before `at` (their holders died); returns how many. */
  deleteExpiredLeases(at: string): Promise<number>;
}
