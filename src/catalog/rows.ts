import type { ApiKey, Scope } from '../domain/api-key.js';
import type { Asset, AssetVersion, MediaType, Rendition, Run, StepRecord } from '../domain/asset.js';
import type { Project } from '../domain/project.js';
import type { UploadSession } from '../domain/upload.js';
import type { NewVersion } from './catalog.js';
import type {
  ApiKeyRow,
  AssetRow,
  AssetVersionRow,
  ProjectRow,
  ProjectsTable,
  RenditionRow,
  RunRow,
  StepRow,
  UploadRow,
} from './schema.js';

// --- values ------------------------------------------------------------------------------------

/** Reads a `BigIntColumn` (a string from node-postgres, a number from SQLite). */
export function toNumber(value: number | string | bigint): number {
  return typeof value === 'number' ? value : Number(value);
}

export function toNumberOrNull(value: number | string | bigint | null): number | null {
  return value === null ? null : toNumber(value);
}

export function intOrNull(value: number | null | undefined): number | null {
  return value === null || value === undefined ? null : Math.round(value);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function parseJsonObject(text: string | null): Record<string, unknown> {
  if (text === null || text === '') return {};
  try {
    const parsed: unknown = JSON.parse(text);
    return isPlainObject(parsed) ? parsed : {};
  } catch {
    return {};
  }
}

export function parseJsonStringArray(text: string | null): string[] {
  if (text === null || text === '') return [];
  try {
    const parsed: unknown = JSON.parse(text);
    return Array.isArray(parsed) ? parsed.filter((item): item is string => typeof item === 'string') : [];
  } catch {
    return [];
  }
}

// --- rows to write ------------------------------------------------------------------------------

/** The processing outcome a version records and the asset mirrors for its current version. */
export type Outcome = Pick<
  AssetVersionRow,
  | 'status'
  | 'error'
  | 'width'
  | 'height'
  | 'format'
  | 'blurhash'
  | 'duration_sec'
  | 'perceptual_hash'
  | 'extra'
  | 'processed_at'
>;

/** A version (or asset) that waits for its run: no outcome, no facts. */
export const PROCESSING_OUTCOME = {
  status: 'processing',
  error: null,
  width: null,
  height: null,
  format: null,
  blurhash: null,
  duration_sec: null,
  perceptual_hash: null,
  extra: '{}',
  processed_at: null,
} as const satisfies Outcome;

export function outcomeOf(row: Outcome): Outcome {
  return {
    status: row.status,
    error: row.error,
    width: row.width,
    height: row.height,
    format: row.format,
    blurhash: row.blurhash,
    duration_sec: row.duration_sec,
    perceptual_hash: row.perceptual_hash,
    extra: row.extra,
    processed_at: row.processed_at,
  };
}

/** A version row as written (its size a number, so it can be inserted). */
export type NewVersionRow = Omit<AssetVersionRow, 'size'> & { size: number };

/** The bytes a new version (the first one included) was uploaded with. */
export type VersionUpload = Pick<
  NewVersion,
  'originalKey' | 'filename' | 'mimeType' | 'size' | 'sha256' | 'type' | 'duplicateOf'
>;

/**
 * Version `version` of `assetId`, waiting for its run. Each version remembers the `duplicateOf` it
 * was uploaded with, restored with it (`setCurrentVersion`).
 */
export function newVersionRow(
  assetId: string,
  version: number,
  upload: VersionUpload,
  createdAt: string,
): NewVersionRow {
  return {
    asset_id: assetId,
    version,
    original_key: upload.originalKey,
    filename: upload.filename,
    mime_type: upload.mimeType,
    size: upload.size,
    sha256: upload.sha256,
    created_at: createdAt,
    type: upload.type,
    ...PROCESSING_OUTCOME,
    duplicate_of: upload.duplicateOf ?? null,
  };
}

export function queuedRun(id: string, assetId: string, version: number, kind: MediaType, at: string): RunRow {
  return {
    id,
    asset_id: assetId,
    version,
    kind,
    status: 'queued',
    error: null,
    attempts: 0,
    progress: 0,
    created_at: at,
    started_at: null,
    finished_at: null,
  };
}

// --- rows read -----------------------------------------------------------------------------------

/** The outcome fields an asset and a version share, in the place both records list them. */
function toOutcomeFields(
  row: Outcome,
): Pick<
  Asset,
  'status' | 'error' | 'width' | 'height' | 'format' | 'blurhash' | 'durationSec' | 'perceptualHash'
> {
  return {
    status: row.status,
    error: row.error,
    width: toNumberOrNull(row.width),
    height: toNumberOrNull(row.height),
    format: row.format,
    blurhash: row.blurhash,
    durationSec: toNumberOrNull(row.duration_sec),
    perceptualHash: row.perceptual_hash,
  };
}

export function toAsset(row: AssetRow): Asset {
  return {
    id: row.id,
    projectId: row.project_id,
    filename: row.filename,
    type: row.type,
    mimeType: row.mime_type,
    size: toNumber(row.size),
    sha256: row.sha256,
    ...toOutcomeFields(row),
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

export function toAssetVersion(row: AssetVersionRow): AssetVersion {
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
    ...toOutcomeFields(row),
    extra: parseJsonObject(row.extra),
    processedAt: row.processed_at,
  };
}

export function toRun(row: RunRow): Run {
  return {
    id: row.id,
    assetId: row.asset_id,
    version: toNumber(row.version),
    kind: row.kind,
    status: row.status,
    error: row.error,
    attempts: toNumber(row.attempts),
    progress: toNumber(row.progress),
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
  };
}

export function toStep(row: StepRow): StepRecord {
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

export function toRendition(row: RenditionRow): Rendition {
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

export function toProject(row: ProjectRow): Project {
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
    // PostgreSQL reads a boolean, SQLite 0/1.
    exposeGps: row.expose_gps === true || row.expose_gps === 1,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export function toProjectRow(project: Project): {
  [K in keyof ProjectsTable]: K extends 'max_upload_bytes' | 'max_total_bytes'
    ? number | null
    : K extends 'expose_gps'
      ? number
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
    // 0/1 for both dialects: better-sqlite3 cannot bind a boolean; PostgreSQL parses `1` as true.
    expose_gps: project.exposeGps ? 1 : 0,
    created_at: project.createdAt,
    updated_at: project.updatedAt,
  };
}

export function toApiKey(row: ApiKeyRow): ApiKey {
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

export function toUpload(row: UploadRow): UploadSession {
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
