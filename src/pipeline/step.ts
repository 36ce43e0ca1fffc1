import type { Logger } from 'pino';
import type { AssetFacts, MediaType } from '../domain/asset.js';
import type { ImagePreset } from '../domain/image-presets.js';
import { AppError } from '../errors.js';
import type { ImageLimits } from '../media/image.js';

export interface StepLimits extends ImageLimits {
  /** The project's longest accepted video/audio, in seconds; `null` for no limit. */
  maxDurationSec: number | null;
  projectId: string;
}

/** Server-wide choices the steps follow (from config). */
export interface PipelineSettings {
  imagePresets: readonly ImagePreset[];
  blurhashComponents: { x: number; y: number };
}

/** What a step knows of the settings for this run: the server's plus the asset's project's. */
export interface StepSettings extends PipelineSettings {
  /** The project lets GPS coordinates from EXIF onto the asset record. */
  exposeGps: boolean;
}

/** JSON-serialisable summary a step returns; stored on the step record, read back on resume. */
export type StepOutput = Record<string, unknown>;

export interface OutputFile {
  /** Rendition name, unique within a version (e.g. `thumb.webp`). */
  name: string;
  body: Buffer;
  contentType: string;
  width?: number | undefined;
  height?: number | undefined;
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
  progress(percent: number): Promise<void>;
}

export interface StepDefinition {
  name: string;
  run(ctx: StepContext): Promise<StepOutput>;
}

/** The steps of one media type, and how their outputs become facts on the asset record. */
export interface PipelineDefinition {
  kind: MediaType;
  steps: readonly StepDefinition[];
  facts(outputs: Readonly<Record<string, StepOutput>>): AssetFacts;
}

/**
 * A failure a retry cannot fix: the input is damaged, unsupported or over a limit. The run ends
 * `failed` at once with this reason instead of being retried.
 */
export function isPermanentFailure(err: unknown): err is AppError {
  return err instanceof AppError && err.status >= 400 && err.status < 500;
}
