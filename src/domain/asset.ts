/** The three kinds of media assetpipe processes. */
export type MediaType = 'image' | 'video' | 'audio';
export const MEDIA_TYPES: readonly MediaType[] = ['image', 'video', 'audio'];

/** An asset is `processing` from upload until its run publishes (`ready`) or fails for good. */
export type AssetStatus = 'processing' | 'ready' | 'failed';
export const ASSET_STATUSES: readonly AssetStatus[] = ['processing', 'ready', 'failed'];

export type RunStatus = 'queued' | 'running' | 'succeeded' | 'failed';
/** `abandoned`: the attempt's worker died or lost its lease; a later attempt took over. */
export type StepStatus = 'running' | 'succeeded' | 'failed' | 'skipped' | 'abandoned';

/** Facts the pipeline learned about the current version, merged into the asset record. */
export interface AssetFacts {
  width?: number | null;
  height?: number | null;
  format?: string | null;
  blurhash?: string | null;
  durationSec?: number | null;
  /** 64-bit DCT pHash as 16 hex digits (images): indexed for near-duplicate search. */
  perceptualHash?: string | null;
  /** Everything else a step wants on the record (later issues add fields here). */
  extra?: Record<string, unknown>;
}

export interface Asset {
  id: string;
  projectId: string;
  filename: string;
  type: MediaType;
  mimeType: string;
  size: number;
  sha256: string;
  status: AssetStatus;
  error: string | null;
  width: number | null;
  height: number | null;
  format: string | null;
  blurhash: string | null;
  durationSec: number | null;
  /** 64-bit DCT pHash of the current version (16 hex digits), for images once processed. */
  perceptualHash: string | null;
  versionNumber: number;
  uploadedAt: string;
  processedAt: string | null;
  extra: Record<string, unknown>;
  /** The client's stable id of this media within its project (versions share it), if given. */
  mediaId: string | null;
  tags: string[];
  /** When the current version's bytes equal another asset's in the project (duplicate policy `link`). */
  duplicateOf: string | null;
  /** Set while the asset is deleted but can still be restored (grace period). */
  deletedAt: string | null;
}

export interface AssetVersion {
  assetId: string;
  version: number;
  originalKey: string;
  filename: string;
  type: MediaType;
  mimeType: string;
  size: number;
  sha256: string;
  createdAt: string;
  /** Outcome of this version's latest run; the asset record mirrors the current version's. */
  status: AssetStatus;
  error: string | null;
  width: number | null;
  height: number | null;
  format: string | null;
  blurhash: string | null;
  durationSec: number | null;
  perceptualHash: string | null;
  extra: Record<string, unknown>;
  processedAt: string | null;
}

export interface Rendition {
  assetId: string;
  version: number;
  /** e.g. `thumb.webp`; unique per (asset, version). */
  name: string;
  key: string;
  contentType: string;
  size: number;
  width: number | null;
  height: number | null;
  createdAt: string;
}

export interface StepRecord {
  id: string;
  runId: string;
  name: string;
  attempt: number;
  status: StepStatus;
  startedAt: string;
  finishedAt: string | null;
  durationMs: number | null;
  error: string | null;
  output: Record<string, unknown> | null;
}

export interface Run {
  id: string;
  assetId: string;
  version: number;
  kind: MediaType;
  status: RunStatus;
  error: string | null;
  /** How many times a worker took this run up (1 unless a worker died or a retry happened). */
  attempts: number;
  /** Per cent done (0-100) as the steps report it (a video's encode from ffmpeg's -progress). */
  progress: number;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface RunWithSteps extends Run {
  steps: StepRecord[];
}
