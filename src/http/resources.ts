import type { Asset, AssetVersion, Rendition, RunWithSteps } from '../domain/asset.js';
import type { ImageLinks } from './image-links.js';
import type { StreamLinks } from './stream-links.js';

function str(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

function num(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

/**
 * What the image steps learned, promoted from `metadata` to the record (null until processed), and
 * with `links` the eager variants with ready-made `/img` URLs and a `srcset` of them.
 */
function imageFields(asset: Asset, base: string, links: ImageLinks | undefined) {
  const extra = asset.extra;
  const listed = Array.isArray(extra.variants) ? extra.variants : [];
  const variants = listed.flatMap((item: unknown) => {
    if (typeof item !== 'object' || item === null) return [];
    const v = item as Record<string, unknown>;
    const name = str(v.name);
    const preset = str(v.preset);
    const format = str(v.format);
    if (name === null || preset === null || format === null) return [];
    return [
      {
        name,
        preset,
        format,
        contentType: str(v.contentType),
        width: num(v.width),
        height: num(v.height),
        size: num(v.size),
        url: `${base}/renditions/${encodeURIComponent(name)}`,
        src: links ? links.src({ preset, f: format }) : null,
      },
    ];
  });
  // One srcset entry per preset, in the format every browser reads that the presets offer most.
  const srcsetFormat = ['webp', 'jpeg', 'png', 'avif'].find((f) => variants.some((v) => v.format === f));
  const srcset = variants
    .filter((v) => v.format === srcsetFormat && v.src !== null && v.width !== null)
    .sort((a, b) => (a.width ?? 0) - (b.width ?? 0))
    .filter((v, i, all) => i === 0 || v.width !== all[i - 1]?.width)
    .map((v) => `${v.src} ${v.width}w`)
    .join(', ');
  return {
    hasAlpha: typeof extra.hasAlpha === 'boolean' ? extra.hasAlpha : null,
    animated: typeof extra.animated === 'boolean' ? extra.animated : null,
    frames: num(extra.frames),
    colorSpace: str(extra.colorSpace),
    exif: typeof extra.exif === 'object' && extra.exif !== null ? extra.exif : null,
    dominantColor: str(extra.dominantColor),
    thumbhash: str(extra.thumbhash),
    lqip: str(extra.lqip),
    variants,
    srcset: srcset === '' ? null : srcset,
  };
}

function record(value: unknown): Record<string, unknown> | null {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : null;
}

/**
 * A video's or audio's stream package on the record: HLS, DASH, poster, storyboard and download
 * URLs under the version's signed prefix (null until ready), and the ladder that was chosen.
 */
function streamFields(asset: Asset, links: StreamLinks | undefined) {
  const stream = record(asset.extra.stream);
  const url = (path: unknown) => (links && typeof path === 'string' ? links.url(path) : null);
  const poster = record(stream?.poster);
  const storyboard = record(stream?.storyboard);
  const sheets = Array.isArray(storyboard?.sheets) ? storyboard.sheets : [];
  return {
    hls: url(stream?.hls),
    dash: url(stream?.dash),
    poster: links && poster ? { jpeg: url(poster.jpeg), webp: url(poster.webp) } : null,
    storyboard:
      links && storyboard
        ? { vtt: url(storyboard.vtt), sheets: sheets.map((sheet: unknown) => url(sheet)) }
        : null,
    download: url(stream?.download),
    ladder: record(asset.extra.ladder),
  };
}

/** Stream files are reached through the `hls`/`dash`/… URLs, not listed one by one. */
const STREAM_RENDITION = /^stream\//;

/**
 * The asset record as the API shows it. `links`: signed `/img` URLs for a ready image;
 * `streamLinks`: the signed stream prefix of a ready video or audio.
 */
export function assetResource(
  asset: Asset,
  renditions: Rendition[] = [],
  links?: ImageLinks,
  streamLinks?: StreamLinks,
) {
  const base = `/v1/assets/${asset.id}`;
  return {
    id: asset.id,
    projectId: asset.projectId,
    filename: asset.filename,
    type: asset.type,
    mimeType: asset.mimeType,
    size: asset.size,
    sha256: asset.sha256,
    status: asset.status,
    error: asset.error,
    width: asset.width,
    height: asset.height,
    format: asset.format,
    blurhash: asset.blurhash,
    durationSec: asset.durationSec,
    perceptualHash: asset.perceptualHash,
    versionNumber: asset.versionNumber,
    uploadedAt: asset.uploadedAt,
    processedAt: asset.processedAt,
    ...(asset.type === 'image' ? imageFields(asset, base, links) : streamFields(asset, streamLinks)),
    metadata: asset.extra,
    mediaId: asset.mediaId,
    tags: asset.tags,
    duplicateOf: asset.duplicateOf,
    deletedAt: asset.deletedAt,
    renditions: renditions
      .filter((r) => !STREAM_RENDITION.test(r.name))
      .map((r) => ({
        name: r.name,
        contentType: r.contentType,
        size: r.size,
        width: r.width,
        height: r.height,
        url: `${base}/renditions/${encodeURIComponent(r.name)}`,
      })),
    links: { self: base, original: `${base}/original`, runs: `${base}/runs`, versions: `${base}/versions` },
  };
}

export function runResource(run: RunWithSteps) {
  return {
    id: run.id,
    assetId: run.assetId,
    version: run.version,
    kind: run.kind,
    status: run.status,
    error: run.error,
    attempts: run.attempts,
    progress: run.progress,
    createdAt: run.createdAt,
    startedAt: run.startedAt,
    finishedAt: run.finishedAt,
    durationMs:
      run.startedAt && run.finishedAt
        ? new Date(run.finishedAt).getTime() - new Date(run.startedAt).getTime()
        : null,
    steps: run.steps.map((s) => ({
      name: s.name,
      attempt: s.attempt,
      status: s.status,
      startedAt: s.startedAt,
      finishedAt: s.finishedAt,
      durationMs: s.durationMs,
      error: s.error,
      output: s.output,
    })),
  };
}

export function versionResource(version: AssetVersion) {
  const base = `/v1/assets/${version.assetId}/versions/${version.version}`;
  return {
    version: version.version,
    filename: version.filename,
    type: version.type,
    mimeType: version.mimeType,
    size: version.size,
    sha256: version.sha256,
    createdAt: version.createdAt,
    status: version.status,
    error: version.error,
    width: version.width,
    height: version.height,
    format: version.format,
    blurhash: version.blurhash,
    durationSec: version.durationSec,
    perceptualHash: version.perceptualHash,
    processedAt: version.processedAt,
    links: { original: `${base}/original`, makeCurrent: `${base}/current` },
  };
}
