import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { DEFAULT_IMAGE_PRESETS, type ImagePreset, parseImagePresets } from './domain/image-presets.js';
import { DEFAULT_LADDER_SETTINGS, type VideoCodec, validateLadderSettings } from './domain/ladder.js';
import type { VideoSettings } from './pipeline/step.js';
import { parseS3Location } from './storage/s3-location.js';

/**
 * Everything assetpipe reads from its environment, parsed and validated once at start-up.
 * Nothing else in the code base reads `process.env`; the one exception is the AWS SDK, which finds
 * S3 credentials itself (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, instance and
 * container roles, web identity): re-implementing that chain here would only lose parts of it.
 */
export interface Config {
  /** Where the embedded catalog, queue and blobs live. @default ./data */
  dataDir: string;
  host: string;
  port: number;
  /** Pipeline runs processed at once by this process; 0 = no workers. */
  workers: number;
  /** Largest accepted upload. @default 10 GiB */
  maxUploadBytes: number;
  /** Largest accepted image, in pixels (width x height x frames): decompression-bomb guard. @default 50 MP */
  maxInputPixels: number;
  /** A dead worker's job is picked up again after this long. @default 30000 */
  jobLeaseMs: number;
  /** Attempts per pipeline job before it is dead-lettered. @default 5 */
  jobAttempts: number;
  /** One pipeline step may take at most this long. @default 600000 */
  stepTimeoutMs: number;
  /** How long SIGTERM waits for in-flight work before releasing it. @default 20000 */
  shutdownGraceMs: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** `sqlite:///abs/file.db` (embedded, the default) or `postgres://user:pass@host:5432/db` (scaled out). */
  databaseUrl: string;
  /** Which catalog and job queue `databaseUrl` selects. */
  database: DatabaseConfig;
  /** With PostgreSQL: the job queue runs on this Redis instead of PostgreSQL (ASSETPIPE_REDIS_URL). */
  redisUrl: string | undefined;
  /** `file:///abs/dir` (default <dataDir>/blobs) or `s3://bucket[/prefix]?endpoint=…&region=…&forcePathStyle=true`. */
  storage: string;
  /** A key with every right, never stored (at least 24 characters). Unset: one is generated at first start. */
  adminKey: string | undefined;
  /** Requests per minute per API key (per address without one); 0 turns the limit off. @default 6000 */
  rateLimitPerMinute: number;
  /** Secret for the HMAC-signed URLs assetpipe hands out (upload parts); generated and kept in dataDir when unset. */
  signingSecret: string | undefined;
  /** How long presigned upload-part URLs stay valid. @default 3600 */
  presignExpirySec: number;
  /** Stale partial uploads (tus and multipart) are removed after this long. @default 86400 */
  uploadExpirySec: number;
  /** How long a deleted asset can be restored before its bytes are removed. @default 604800 (7 days) */
  deleteGraceSec: number;
  /** Public base URL (for absolute URLs in responses), e.g. https://media.example.com. @default derived from the request */
  publicUrl: string | undefined;
  /** Eager image variants made during every image run. @default thumb=320:webp;preview=1280:webp+avif */
  imagePresets: ImagePreset[];
  /** BlurHash components (x by y). @default 4x3 */
  blurhashComponents: { x: number; y: number };
  /** On-demand transforms (`/img`). */
  img: ImgConfig;
  /** The video ladder and its encoding (ASSETPIPE_VIDEO_*). */
  video: VideoSettings;
}

export type DatabaseConfig =
  | { kind: 'sqlite'; file: string }
  | {
      kind: 'postgres';
      url: string;
      /** The catalog's tables (ASSETPIPE_DATABASE_SCHEMA). @default assetpipe */
      schema: string;
      /** The BullMQ job queue's tables, beside the catalog's: `<schema>_queue`. */
      queueSchema: string;
      /** Connections this process opens for the catalog (ASSETPIPE_DATABASE_POOL). @default 10 */
      poolSize: number;
    };

export interface ImgConfig {
  /**
   * `required`: every /img URL must carry a valid signature. `off`: unsigned URLs are served, but
   * only for the allow-listed widths and qualities (a signature, when present, is still checked).
   * Private projects always need a signature. @default required
   */
  signature: 'required' | 'off';
  /** Widths accepted on unsigned URLs. */
  allowedWidths: number[];
  /** Qualities accepted on unsigned URLs. */
  allowedQualities: number[];
  /** Largest output side (after dpr). @default 8192 */
  maxOutputSide: number;
  /** Transforms run at once by this process. @default the number of cores */
  concurrency: number;
  /** Transforms waiting for a slot before requests get 503. @default 64 */
  queueSize: number;
  /** One transform may take at most this long. @default 30000 */
  timeoutMs: number;
}

/** Values given on the command line; they win over the environment. */
export interface ConfigFlags {
  data?: string | undefined;
  host?: string | undefined;
  port?: string | number | undefined;
  workers?: string | number | boolean | undefined;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

type Env = Readonly<Record<string, string | undefined>>;

function integer(variable: string, raw: string, min: number, max: number): number {
  const trimmed = raw.trim();
  if (!/^\d+$/.test(trimmed)) {
    throw new ConfigError(
      variable,
      `expected a whole number between ${min} and ${max}, got ${JSON.stringify(raw)}`,
    );
  }
  const value = Number(trimmed);
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(
      variable,
      `expected a whole number between ${min} and ${max}, got ${JSON.stringify(raw)}`,
    );
  }
  return value;
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1024 ** 4,
  tib: 1024 ** 4,
};

/** Accepts `1048576`, `512MiB`, `10 GB` (binary multiples, as people mean them for file sizes). */
export function parseByteSize(variable: string, raw: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(raw);
  const unit = SIZE_UNITS[(match?.[2] ?? '').toLowerCase()];
  if (!match || unit === undefined) {
    throw new ConfigError(
      variable,
      `expected a size such as 1048576, 512MiB or 10GiB, got ${JSON.stringify(raw)}`,
    );
  }
  const value = Math.floor(Number(match[1]) * unit);
  if (value < 1 || !Number.isSafeInteger(value)) {
    throw new ConfigError(variable, `expected a positive size, got ${JSON.stringify(raw)}`);
  }
  return value;
}

function oneOf<T extends string>(variable: string, raw: string, allowed: readonly T[]): T {
  const value = raw.trim().toLowerCase();
  if (!(allowed as readonly string[]).includes(value)) {
    throw new ConfigError(variable, `expected one of ${allowed.join(', ')}, got ${JSON.stringify(raw)}`);
  }
  return value as T;
}

/** `320,640, 1280` -> [320, 640, 1280]: whole numbers in range, sorted, without repeats. */
function integerList(variable: string, raw: string, min: number, max: number): number[] {
  const items = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (items.length === 0) throw new ConfigError(variable, 'expected a comma-separated list of whole numbers');
  return [...new Set(items.map((item) => integer(variable, item, min, max)))].sort((a, b) => a - b);
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/**
 * Builds the configuration from flags and `ASSETPIPE_*` variables. Throws `ConfigError` naming
 * the offending flag or variable.
 */
export function loadConfig(env: Env, flags: ConfigFlags = {}): Config {
  const read = (name: string): string | undefined => {
    const value = env[name];
    return value === undefined || value === '' ? undefined : value;
  };

  const dataDir = resolve(flags.data ?? read('ASSETPIPE_DATA') ?? './data');
  const host = flags.host ?? read('ASSETPIPE_HOST') ?? '127.0.0.1';
  const port =
    flags.port !== undefined
      ? integer('--port', String(flags.port), 1, 65535)
      : integer('ASSETPIPE_PORT', read('ASSETPIPE_PORT') ?? '8080', 1, 65535);

  const defaultWorkers = Math.max(1, Math.min(4, availableParallelism()));
  let workers: number;
  if (flags.workers === false) workers = 0;
  else if (flags.workers !== undefined && flags.workers !== true)
    workers = integer('--workers', String(flags.workers), 0, 256);
  else workers = integer('ASSETPIPE_WORKERS', read('ASSETPIPE_WORKERS') ?? String(defaultWorkers), 0, 256);

  const maxUploadBytes = parseByteSize(
    'ASSETPIPE_MAX_UPLOAD_BYTES',
    read('ASSETPIPE_MAX_UPLOAD_BYTES') ?? '10GiB',
  );
  const maxInputPixels = integer(
    'ASSETPIPE_MAX_INPUT_PIXELS',
    read('ASSETPIPE_MAX_INPUT_PIXELS') ?? '50000000',
    1,
    2 ** 40,
  );
  const jobLeaseMs = integer(
    'ASSETPIPE_JOB_LEASE_MS',
    read('ASSETPIPE_JOB_LEASE_MS') ?? '30000',
    1000,
    600_000,
  );
  const jobAttempts = integer('ASSETPIPE_JOB_ATTEMPTS', read('ASSETPIPE_JOB_ATTEMPTS') ?? '5', 1, 100);
  const stepTimeoutMs = integer(
    'ASSETPIPE_STEP_TIMEOUT_MS',
    read('ASSETPIPE_STEP_TIMEOUT_MS') ?? '600000',
    1000,
    86_400_000,
  );
  const shutdownGraceMs = integer(
    'ASSETPIPE_SHUTDOWN_GRACE_MS',
    read('ASSETPIPE_SHUTDOWN_GRACE_MS') ?? '20000',
    0,
    600_000,
  );
  const logLevel = oneOf('ASSETPIPE_LOG_LEVEL', read('ASSETPIPE_LOG_LEVEL') ?? 'info', LOG_LEVELS);

  const databaseUrl = read('ASSETPIPE_DATABASE_URL') ?? `sqlite://${resolve(dataDir, 'assetpipe.db')}`;
  const database = readDatabase(
    databaseUrl,
    read('ASSETPIPE_DATABASE_SCHEMA'),
    integer('ASSETPIPE_DATABASE_POOL', read('ASSETPIPE_DATABASE_POOL') ?? '10', 1, 1000),
  );
  const redisUrl = read('ASSETPIPE_REDIS_URL');
  if (redisUrl !== undefined) {
    if (!/^rediss?:\/\/\S+$/.test(redisUrl)) {
      throw new ConfigError(
        'ASSETPIPE_REDIS_URL',
        `expected redis://host:6379 or rediss://…, got ${JSON.stringify(redactUrl(redisUrl))}`,
      );
    }
    if (database.kind !== 'postgres') {
      throw new ConfigError(
        'ASSETPIPE_REDIS_URL',
        'the Redis job queue belongs to a scaled-out deployment: set ASSETPIPE_DATABASE_URL=postgres://… too (the embedded SQLite mode keeps its queue in the SQLite file)',
      );
    }
  }
  const storage = read('ASSETPIPE_STORAGE') ?? `file://${resolve(dataDir, 'blobs')}`;
  if (!storage.startsWith('file://') && !storage.startsWith('s3://')) {
    throw new ConfigError(
      'ASSETPIPE_STORAGE',
      `expected file:///absolute/dir or s3://bucket?endpoint=…&region=…, got ${JSON.stringify(storage)}`,
    );
  }
  if (storage.startsWith('s3://')) {
    try {
      parseS3Location(storage);
    } catch (err) {
      throw new ConfigError('ASSETPIPE_STORAGE', (err as Error).message);
    }
  }

  const adminKey = read('ASSETPIPE_ADMIN_KEY');
  if (adminKey !== undefined && (adminKey.length < 24 || /\s/.test(adminKey))) {
    throw new ConfigError(
      'ASSETPIPE_ADMIN_KEY',
      'must be at least 24 characters without spaces (e.g. from: openssl rand -hex 24)',
    );
  }
  const signingSecret = read('ASSETPIPE_SIGNING_SECRET');
  if (signingSecret !== undefined && signingSecret.length < 32) {
    throw new ConfigError('ASSETPIPE_SIGNING_SECRET', 'must be at least 32 characters');
  }
  if (signingSecret === undefined && database.kind === 'postgres') {
    // Each node would otherwise generate its own secret, and a URL signed by one API node would be
    // refused by the next one behind the load balancer.
    throw new ConfigError(
      'ASSETPIPE_SIGNING_SECRET',
      'must be set when ASSETPIPE_DATABASE_URL is PostgreSQL: every API and worker node signs and verifies URLs with the same secret (e.g. from: openssl rand -base64 48)',
    );
  }
  const rateLimitPerMinute = integer(
    'ASSETPIPE_RATE_LIMIT',
    read('ASSETPIPE_RATE_LIMIT') ?? '6000',
    0,
    10_000_000,
  );
  const presignExpirySec = integer(
    'ASSETPIPE_PRESIGN_EXPIRY_SEC',
    read('ASSETPIPE_PRESIGN_EXPIRY_SEC') ?? '3600',
    1,
    7 * 86400,
  );
  const uploadExpirySec = integer(
    'ASSETPIPE_UPLOAD_EXPIRY_SEC',
    read('ASSETPIPE_UPLOAD_EXPIRY_SEC') ?? '86400',
    1,
    365 * 86400,
  );
  const deleteGraceSec = integer(
    'ASSETPIPE_DELETE_GRACE_SEC',
    read('ASSETPIPE_DELETE_GRACE_SEC') ?? '604800',
    0,
    365 * 86400,
  );
  const publicUrl = read('ASSETPIPE_PUBLIC_URL');
  if (publicUrl !== undefined && !/^https?:\/\/[^\s/]+(\/[^\s]*)?$/.test(publicUrl)) {
    throw new ConfigError(
      'ASSETPIPE_PUBLIC_URL',
      `expected an http(s) URL, got ${JSON.stringify(publicUrl)}`,
    );
  }

  let imagePresets: ImagePreset[];
  try {
    imagePresets = parseImagePresets(read('ASSETPIPE_IMAGE_PRESETS') ?? DEFAULT_IMAGE_PRESETS);
  } catch (err) {
    throw new ConfigError('ASSETPIPE_IMAGE_PRESETS', (err as Error).message);
  }
  const blurhashRaw = read('ASSETPIPE_BLURHASH_COMPONENTS') ?? '4x3';
  const blurhashMatch = /^\s*([1-9])\s*x\s*([1-9])\s*$/i.exec(blurhashRaw);
  if (!blurhashMatch) {
    throw new ConfigError(
      'ASSETPIPE_BLURHASH_COMPONENTS',
      `expected XxY with each from 1 to 9 (e.g. 4x3), got ${JSON.stringify(blurhashRaw)}`,
    );
  }
  const blurhashComponents = { x: Number(blurhashMatch[1]), y: Number(blurhashMatch[2]) };

  const img: ImgConfig = {
    signature: oneOf('ASSETPIPE_IMG_SIGNATURE', read('ASSETPIPE_IMG_SIGNATURE') ?? 'required', [
      'required',
      'off',
    ] as const),
    allowedWidths: integerList(
      'ASSETPIPE_IMG_WIDTHS',
      read('ASSETPIPE_IMG_WIDTHS') ??
        '16,32,48,64,96,128,160,200,256,320,384,400,480,512,640,750,800,828,960,1024,1080,1200,1280,1600,1920,2048,2560,3840',
      1,
      8192,
    ),
    allowedQualities: integerList(
      'ASSETPIPE_IMG_QUALITIES',
      read('ASSETPIPE_IMG_QUALITIES') ?? '30,40,50,60,65,70,75,80,85,90,95,100',
      1,
      100,
    ),
    maxOutputSide: integer('ASSETPIPE_IMG_MAX_SIDE', read('ASSETPIPE_IMG_MAX_SIDE') ?? '8192', 16, 16384),
    concurrency: integer(
      'ASSETPIPE_IMG_CONCURRENCY',
      read('ASSETPIPE_IMG_CONCURRENCY') ?? String(Math.max(1, availableParallelism())),
      1,
      256,
    ),
    queueSize: integer('ASSETPIPE_IMG_QUEUE', read('ASSETPIPE_IMG_QUEUE') ?? '64', 0, 100_000),
    timeoutMs: integer(
      'ASSETPIPE_IMG_TIMEOUT_MS',
      read('ASSETPIPE_IMG_TIMEOUT_MS') ?? '30000',
      1000,
      600_000,
    ),
  };

  const video = readVideoSettings(read);

  return {
    video,
    imagePresets,
    blurhashComponents,
    img,
    adminKey,
    signingSecret,
    rateLimitPerMinute,
    presignExpirySec,
    uploadExpirySec,
    deleteGraceSec,
    publicUrl: publicUrl?.replace(/\/+$/, ''),
    dataDir,
    host,
    port,
    workers,
    maxUploadBytes,
    maxInputPixels,
    jobLeaseMs,
    jobAttempts,
    stepTimeoutMs,
    shutdownGraceMs,
    logLevel,
    databaseUrl,
    database,
    redisUrl,
    storage,
  };
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,50}$/;

function readDatabase(url: string, schemaRaw: string | undefined, poolSize: number): DatabaseConfig {
  if (url.startsWith('sqlite://')) {
    if (schemaRaw !== undefined) {
      throw new ConfigError(
        'ASSETPIPE_DATABASE_SCHEMA',
        'only applies to a PostgreSQL ASSETPIPE_DATABASE_URL',
      );
    }
    return { kind: 'sqlite', file: pathFromUrl(url) };
  }
  if (/^postgres(ql)?:\/\//.test(url)) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new ConfigError('ASSETPIPE_DATABASE_URL', `not a valid URL: ${JSON.stringify(redactUrl(url))}`);
    }
    if (parsed.hostname === '' && !parsed.searchParams.has('host')) {
      throw new ConfigError('ASSETPIPE_DATABASE_URL', 'expected postgres://user:password@host:5432/database');
    }
    const schema = schemaRaw ?? 'assetpipe';
    if (!SCHEMA_NAME.test(schema)) {
      throw new ConfigError(
        'ASSETPIPE_DATABASE_SCHEMA',
        `expected a lower-case SQL name (letters, digits, _; at most 51 characters), got ${JSON.stringify(schema)}`,
      );
    }
    return { kind: 'postgres', url, schema, queueSchema: `${schema}_queue`, poolSize };
  }
  throw new ConfigError(
    'ASSETPIPE_DATABASE_URL',
    `expected sqlite:///absolute/path.db or postgres://user:password@host:5432/database, got ${JSON.stringify(redactUrl(url))}`,
  );
}

/** A URL fit for messages and logs: its password replaced. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return url.replace(/\/\/([^:/@]*):[^@]*@/, '//$1:***@');
  }
}

const VIDEO_CODECS: readonly VideoCodec[] = ['h264', 'hevc', 'av1'];
const X264_PRESETS = ['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium', 'slow'] as const;

function readVideoSettings(read: (name: string) => string | undefined): VideoSettings {
  const codecs = (read('ASSETPIPE_VIDEO_CODECS') ?? 'h264')
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter(Boolean);
  for (const codec of codecs) {
    if (!VIDEO_CODECS.includes(codec as VideoCodec)) {
      throw new ConfigError(
        'ASSETPIPE_VIDEO_CODECS',
        `unknown codec ${JSON.stringify(codec)}; use h264, hevc, av1`,
      );
    }
  }
  if (!codecs.includes('h264')) {
    throw new ConfigError('ASSETPIPE_VIDEO_CODECS', 'must include h264 (the rendition every player plays)');
  }
  const flag = (name: string, fallback: boolean) =>
    oneOf(name, read(name) ?? (fallback ? 'on' : 'off'), ['on', 'off'] as const) === 'on';
  const ladder = {
    enable1440p: flag('ASSETPIPE_VIDEO_1440P', DEFAULT_LADDER_SETTINGS.enable1440p),
    enable2160p: flag('ASSETPIPE_VIDEO_2160P', DEFAULT_LADDER_SETTINGS.enable2160p),
    minTotalBitrateBps: integer(
      'ASSETPIPE_VIDEO_MIN_BITRATE',
      read('ASSETPIPE_VIDEO_MIN_BITRATE') ?? String(DEFAULT_LADDER_SETTINGS.minTotalBitrateBps),
      228_000,
      1_000_000_000,
    ),
    maxTotalBitrateBps: integer(
      'ASSETPIPE_VIDEO_MAX_BITRATE',
      read('ASSETPIPE_VIDEO_MAX_BITRATE') ?? String(DEFAULT_LADDER_SETTINGS.maxTotalBitrateBps),
      228_000,
      1_000_000_000,
    ),
    segmentDurationSec: integer(
      'ASSETPIPE_VIDEO_SEGMENT_SEC',
      read('ASSETPIPE_VIDEO_SEGMENT_SEC') ?? String(DEFAULT_LADDER_SETTINGS.segmentDurationSec),
      1,
      60,
    ),
    codecs: codecs as VideoCodec[],
  };
  try {
    validateLadderSettings(ladder);
  } catch (err) {
    throw new ConfigError('ASSETPIPE_VIDEO_MIN_BITRATE', (err as Error).message);
  }
  return {
    ladder,
    bitrateMode: oneOf('ASSETPIPE_VIDEO_ABR', read('ASSETPIPE_VIDEO_ABR') ?? 'automated', [
      'automated',
      'fixed',
    ] as const),
    preset: oneOf('ASSETPIPE_VIDEO_PRESET', read('ASSETPIPE_VIDEO_PRESET') ?? 'veryfast', X264_PRESETS),
    chunkSec: integer('ASSETPIPE_VIDEO_CHUNK_SEC', read('ASSETPIPE_VIDEO_CHUNK_SEC') ?? '60', 1, 86_400),
    download: flag('ASSETPIPE_VIDEO_DOWNLOAD', true),
  };
}

/** The process environment: the one read of it, here beside its validation. */
export function processEnv(): Env {
  return process.env;
}

/**
 * The environment ffmpeg and ffprobe run with: this process's, plus SVT_LOG=1, because SVT-AV1
 * prints a ~1 kB banner per encoder to stderr whatever ffmpeg's -v says (at 1 it prints errors
 * only), which would push the error out of the stderr tail a failure reports.
 */
export function toolEnv(): NodeJS.ProcessEnv {
  return { ...process.env, SVT_LOG: '1' };
}

/** The filesystem path inside a `sqlite://` or `file://` URL. */
export function pathFromUrl(url: string): string {
  const path = url.replace(/^(sqlite|file):\/\//, '');
  return resolve(path);
}
