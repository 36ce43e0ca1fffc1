import type { Asset, AssetVersion, Rendition, RunWithSteps } from '../domain/asset.js';

/** The asset record as the API shows it. */
export function assetResource(asset: Asset, renditions: Rendition[] = []) {
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
    versionNumber: asset.versionNumber,
    uploadedAt: asset.uploadedAt,
    processedAt: asset.processedAt,
    metadata: asset.extra,
    mediaId: asset.mediaId,
    tags: asset.tags,
    duplicateOf: asset.duplicateOf,
    deletedAt: asset.deletedAt,
    renditions: renditions.map((r) => ({
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
    processedAt: version.processedAt,
    links: { original: `${base}/original`, makeCurrent: `${base}/current` },
  };
}
