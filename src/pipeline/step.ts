import type { Logger } from 'pino';
import type { AssetFacts, MediaType } from '../domain/asset.js';
import type { Chunk } from '../domain/chunks.js';
import type { ImagePreset } from '../domain/image-presets.js';
import type { LadderSettings } from '../domain/ladder.js';
import { AppError } from '../errors.js';
import type { ImageLimits } from '../media/image.js';
import type { BlobStore } from '../storage/blob-store.js';

export interface StepLimits extends ImageLimits {
  /** The project's longest accepted video/audio, in seconds; `null` for no limit. */
  maxDurationSec: number | null;
  projectId: string;
}

/** How videos are laddered and encoded (ASSETPIPE_VIDEO_*). */
export interface VideoSettings {
  ladder: LadderSettings;
  /** `automated`: rungs and caps from a measured complexity; `fixed`: the default table. */
  bitrateMode: 'automated' | 'fixed';
  /** x264 preset of every rung. */
  preset: 'ultrafast' | 'superfast' | 'veryfast' | 'faster' | 'fast' | 'medium' | 'slow';
  /** Sources longer than this are cut into chunks encoded as separate jobs; seconds. */
  chunkSec: number;
  /** Also write a progressive MP4 (faststart) of the largest rung up to 720p for download. */
  download: boolean;
}

/** Server-wide choices the steps follow (from config). */
export interface PipelineSettings {
  imagePresets: readonly ImagePreset[];
  blurhashComponents: { x: number; y: number };
  video: VideoSettings;
}

/** What a step knows of the settings for this run: the server's plus the asset's project's. */
export interface StepSettings extends PipelineSettings {
  /** The project lets GPS coordinates from EXIF onto the asset record. */
  exposeGps: boolean;
}

/**
 * JSON-serialisable summary a step returns; stored on the step record, read back on resume.
 * `temporaryKeys` (string[]) lists intermediate blobs the runner deletes once the run is published
 * (not before: a retry of the step may still need them).
 */
export type StepOutput = Record<string, unknown>;

export interface OutputFile {
  /** Rendition name, unique within a version (e.g. `thumb.webp`). */
  name: string;
  body: Buffer;
  contentType: string;
  width?: number | undefined;
  height?: number | undefined;
}

export interface OutputFileOnDisk {
  /** Rendition name, unique within a version (e.g. `stream/h264-720p/seg-00000.m4s`). */
  name: string;
  /** A local file, streamed to the blob store. */
  path: string;
  contentType: string;
  width?: number | undefined;
  height?: number | undefined;
}

/**
 * The chunk jobs of a run: a long video is cut into chunks that any worker encodes as jobs of
 * their own (`pipeline.chunk`, with their own worker slots, so a run waiting for its chunks never
 * keeps them from running).
 */
export interface ChunkJobs {
  /** Queues the jobs of these chunks (each at most once per run) and returns their job ids. */
  dispatch(total: number, chunks: readonly Chunk[]): Promise<{ index: number; jobId: string }[]>;
  /** Outputs of the chunk jobs that finished, by chunk index. */
  finished(): Promise<Map<number, StepOutput>>;
  /** A chunk job's state: `dead` means it failed for good (with its last error). */
  job(jobId: string): Promise<{ status: string; lastError: string | null } | undefined>;
  /** The run's own status: a chunk that failed for good fails the run. */
  runStatus(): Promise<string | undefined>;
}

export interface StepContext {
  runId: string;
  assetId: string;
  version: number;
  mimeType: string;
  logger: Logger;
  signal: AbortSignal;
  limits: StepLimits;
  settings: StepSettings;
  /** Local path of the original, fetched from the blob store once per run attempt. */
  sourcePath(): Promise<string>;
  /** A private directory for this attempt's temporary files, removed when the run attempt ends. */
  scratchDir: string;
  /** Outputs of the steps that ran before this one (also those finished by an earlier attempt). */
  outputs: Readonly<Record<string, StepOutput>>;
  /**
   * Stores a derived file under a key made from (asset, version, step, name) and records it as a
   * rendition. Writing again (a retry) overwrites the same object: outputs are never duplicated.
   */
  writeOutput(file: OutputFile): Promise<{ key: string; size: number }>;
  /** As `writeOutput`, for a file on disk (streamed: segments and other large outputs). */
  writeOutputFile(file: OutputFileOnDisk): Promise<{ key: string; size: number }>;
  /** Intermediate files that are not renditions (chunk encodes). */
  blobs: Pick<BlobStore, 'put' | 'get' | 'delete'>;
  chunks: ChunkJobs;
  progress(percent: number): Promise<void>;
}

export interface StepDefinition {
  name: string;
  /** Its share of the run's progress relative to the other steps (a video's encode dwarfs the rest). @default 1 */
  weight?: number;
  /**
   * How long this step may take for this run, from the earlier steps' outputs (a video's encode
   * grows with its duration); the runner allows the larger of this and ASSETPIPE_STEP_TIMEOUT_MS.
   */
  timeoutMs?(outputs: Readonly<Record<string, StepOutput>>): number;
  run(ctx: StepContext): Promise<StepOutput>;
}

/** The steps of one media type, and how their outputs become facts on the asset record. */
export interface PipelineDefinition {
  kind: MediaType;
  steps: readonly StepDefinition[];
  facts(outputs: Readonly<Record<string, StepOutput>>): AssetFacts;
}

/**
 * Where step `index` of `pipeline` (the last index is publish) starts and ends on the run's 0-100
 * progress scale, by the steps' weights.
 */
export function stepSpan(pipeline: PipelineDefinition, index: number): { start: number; end: number } {
  const weights = [...pipeline.steps.map((s) => s.weight ?? 1), 1];
  const total = weights.reduce((a, b) => a + b, 0);
  const at = (i: number) => (weights.slice(0, i).reduce((a, b) => a + b, 0) / total) * 100;
  return { start: at(index), end: at(index + 1) };
}

/**
 * A failure a retry cannot fix: the input is damaged, unsupported or over a limit. The run ends
 * `failed` at once with this reason instead of being retried.
 */
export function isPermanentFailure(err: unknown): err is AppError {
  return err instanceof AppError && err.status >= 400 && err.status < 500;
}
