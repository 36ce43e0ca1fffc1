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
}

export interface AssetFilter {
  projectId?: string | undefined;
  type?: MediaType | undefined;
  status?: AssetStatus | undefined;
  /** Page size, 1..1000. */
  limit: number;
  /** Return assets strictly older than this id (ids sort by creation time). */
  beforeId?: string | undefined;
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
  getAsset(id: string): Promise<Asset | undefined>;
  listAssets(filter: AssetFilter): Promise<AssetPage>;
  getVersion(assetId: string, version: number): Promise<AssetVersion | undefined>;

  getRun(runId: string): Promise<Run | undefined>;
  /** Runs of one asset, newest first, each with its steps in the order they started. */
  listRunsWithSteps(assetId: string): Promise<RunWithSteps[]>;
  /** Runs that are `queued` or `running`: the recovery sweep makes sure each has a job. */
  listUnfinishedRuns(limit: number): Promise<Run[]>;
  /** Moves the run to `running` and counts the attempt. */
  startRun(runId: string, at: string): Promise<Run>;

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

  /** Run succeeded: asset becomes `ready` with `facts`, atomically. */
  publishRun(runId: string, facts: AssetFacts, at: string): Promise<void>;
  /** Run failed for good: asset becomes `failed` with `reason`, atomically. */
  failRun(runId: string, reason: string, at: string): Promise<void>;

  /** Asset counts per status, for metrics and admin stats. */
  countAssetsByStatus(): Promise<Record<AssetStatus, number>>;
}
