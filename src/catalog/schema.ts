import type { ColumnType, Insertable, Selectable } from 'kysely';
import type { AssetStatus, MediaType, RunStatus, StepStatus } from '../domain/asset.js';

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
  current_version: number;
  /** JSON object as text; `'{}'` when empty. */
  extra: string;
  uploaded_at: string;
  processed_at: string | null;
  updated_at: string;
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
}

export interface RunsTable {
  id: string;
  asset_id: string;
  version: number;
  kind: MediaType;
  status: RunStatus;
  error: string | null;
  attempts: number;
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

export interface Database {
  assets: AssetsTable;
  asset_versions: AssetVersionsTable;
  runs: RunsTable;
  steps: StepsTable;
  renditions: RenditionsTable;
}

export type AssetRow = Selectable<AssetsTable>;
export type NewAssetRow = Insertable<AssetsTable>;
export type AssetVersionRow = Selectable<AssetVersionsTable>;
export type NewAssetVersionRow = Insertable<AssetVersionsTable>;
export type RunRow = Selectable<RunsTable>;
export type NewRunRow = Insertable<RunsTable>;
export type StepRow = Selectable<StepsTable>;
export type RenditionRow = Selectable<RenditionsTable>;
