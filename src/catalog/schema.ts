import type { ColumnType, Insertable, Selectable } from 'kysely';
import type { AssetStatus, MediaType, RunStatus, StepStatus } from '../domain/asset.js';
import type { DuplicatePolicy, Visibility } from '../domain/project.js';
import type { UploadProtocol, UploadState } from '../domain/upload.js';

/**
 * The catalog's tables as Kysely sees them. Both dialects store the same shapes:
 * - timestamps are ISO-8601 UTC strings in `text` columns (they sort correctly as text);
 * - JSON is serialised into `text` columns;
 * - ids are `text` (PostgreSQL: `collate "C"`, so ids compare byte-wise like in SQLite).
 */

/**
 * A PostgreSQL `bigint`: node-postgres returns int8 as a string (it may exceed 2^53), SQLite returns a
 * number. Written as a number; read through `toNumber` in the adapter.
 */
export type BigIntColumn = ColumnType<number | string, number, number>;
/** A nullable PostgreSQL `bigint` (see `BigIntColumn`). */
export type NullableBigIntColumn = ColumnType<number | string | null, number | null, number | null>;

export interface AssetsTable {
  id: string;
  project_id: string;
  filename: string;
  type: MediaType;
  mime_type: string;
  size: BigIntColumn;
  sha256: string;
  status: AssetStatus;
  error: string | null;
  width: number | null;
  height: number | null;
  format: string | null;
  blurhash: string | null;
  duration_sec: number | null;
  /** The current version's `perceptual_hash`, mirrored like the other facts. */
  perceptual_hash: string | null;
  current_version: number;
  /** JSON object as text; `'{}'` when empty. */
  extra: string;
  uploaded_at: string;
  processed_at: string | null;
  updated_at: string;
  /** Unique per project among live (not deleted) assets; a partial unique index enforces it. */
  media_id: string | null;
  /** JSON array of strings as text; `'[]'` when empty. */
  tags: string;
  duplicate_of: string | null;
  /** Set while the asset is soft-deleted. */
  deleted_at: string | null;
}

export interface AssetVersionsTable {
  asset_id: string;
  version: number;
  original_key: string;
  filename: string;
  mime_type: string;
  size: BigIntColumn;
  sha256: string;
  created_at: string;
  type: MediaType;
  /** Outcome of this version's latest run; the asset mirrors it while this version is current. */
  status: AssetStatus;
  error: string | null;
  width: number | null;
  height: number | null;
  format: string | null;
  blurhash: string | null;
  duration_sec: number | null;
  /** 64-bit DCT pHash as 16 lowercase hex digits (images), or null. */
  perceptual_hash: string | null;
  /** JSON object as text; `'{}'` when empty. */
  extra: string;
  processed_at: string | null;
  /** What the asset's `duplicate_of` was when this version was uploaded (restored with the version). */
  duplicate_of: string | null;
}

export interface RunsTable {
  id: string;
  asset_id: string;
  version: number;
  kind: MediaType;
  status: RunStatus;
  error: string | null;
  attempts: number;
  /** Per cent done (0-100), as the steps report it; 100 once published. */
  progress: number;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
}

export interface StepsTable {
  id: string;
  run_id: string;
  name: string;
  attempt: number;
  status: StepStatus;
  started_at: string;
  finished_at: string | null;
  duration_ms: ColumnType<number | string | null, number | null, number | null>;
  error: string | null;
  /** JSON object as text, or null. */
  output: string | null;
}

export interface RenditionsTable {
  asset_id: string;
  version: number;
  name: string;
  key: string;
  content_type: string;
  size: BigIntColumn;
  width: number | null;
  height: number | null;
  created_at: string;
}

/**
 * The full-text search document of each asset: normalised words (see `searchDocument` in
 * queries/search.ts) of its filename, tags and metadata, separated by single spaces. SQLite indexes it
 * with the FTS5 table `assets_fts` (external content, kept in sync by triggers on this table);
 * PostgreSQL with a GIN index on `array_to_tsvector(string_to_array(words, ' '))`.
 */
export interface AssetSearchTable {
  asset_id: string;
  words: string;
}

export interface ProjectsTable {
  id: string;
  name: string;
  visibility: Visibility;
  duplicate_policy: DuplicatePolicy;
  max_upload_bytes: NullableBigIntColumn;
  max_total_bytes: NullableBigIntColumn;
  max_video_duration_sec: number | null;
  /** JSON array of media types as text, or null for "all types". */
  allowed_types: string | null;
  /**
   * PostgreSQL `boolean` (read as true/false), SQLite `integer` 0/1 (read as a number). Written as 0/1:
   * better-sqlite3 cannot bind a boolean, and PostgreSQL reads the text `1`/`0` as a boolean.
   */
  expose_gps: ColumnType<boolean | number, number | undefined, number>;
  created_at: string;
  updated_at: string;
}

/**
 * The near-duplicate index (multi-index hashing, see queries/similar.ts): one row per asset whose
 * current version is an image with a perceptual hash. `b0`..`b3` are the hash's four 16-bit bands
 * (0..65535, `b0` the most significant), each indexed with `project_id`.
 */
export interface ImageHashesTable {
  asset_id: string;
  project_id: string;
  hash: string;
  b0: number;
  b1: number;
  b2: number;
  b3: number;
}

export interface ApiKeysTable {
  id: string;
  name: string;
  prefix: string;
  secret_hash: string;
  /** JSON array of scopes as text. */
  scopes: string;
  project_id: string | null;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

export interface UploadsTable {
  id: string;
  protocol: UploadProtocol;
  project_id: string;
  media_id: string | null;
  filename: string;
  declared_type: string | null;
  size: NullableBigIntColumn;
  key: string;
  store_upload_id: string | null;
  checksum: string | null;
  state: UploadState;
  asset_id: string | null;
  created_by: string | null;
  created_at: string;
  expires_at: string;
  /** When the running completion claimed it (state `completing`); null before 0005 or when open. */
  claimed_at: ColumnType<string | null, string | null | undefined, string | null>;
}

/**
 * Short-lived named locks shared by every process on the database (0006): the holder renews
 * `expires_at` while it works; another process may take an expired one, or ask for it
 * (`release_requested` = 1) and wait.
 */
export interface LeasesTable {
  name: string;
  holder: string;
  expires_at: string;
  release_requested: ColumnType<number, number | undefined, number>;
}

export interface Database {
  assets: AssetsTable;
  asset_versions: AssetVersionsTable;
  runs: RunsTable;
  steps: StepsTable;
  renditions: RenditionsTable;
  asset_search: AssetSearchTable;
  projects: ProjectsTable;
  image_hashes: ImageHashesTable;
  api_keys: ApiKeysTable;
  uploads: UploadsTable;
  leases: LeasesTable;
}

export type AssetRow = Selectable<AssetsTable>;
export type NewAssetRow = Insertable<AssetsTable>;
export type AssetVersionRow = Selectable<AssetVersionsTable>;
export type NewAssetVersionRow = Insertable<AssetVersionsTable>;
export type RunRow = Selectable<RunsTable>;
export type NewRunRow = Insertable<RunsTable>;
export type StepRow = Selectable<StepsTable>;
export type RenditionRow = Selectable<RenditionsTable>;
export type ProjectRow = Selectable<ProjectsTable>;
export type ApiKeyRow = Selectable<ApiKeysTable>;
export type UploadRow = Selectable<UploadsTable>;
