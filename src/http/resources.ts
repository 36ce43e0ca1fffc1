import type { Asset, Rendition, RunWithSteps } from '../domain/asset.js';

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
    renditions: renditions.map((r) => ({
      name: r.name,
      contentType: r.contentType,
      size: r.size,
      width: r.width,
      height: r.height,
      url: `${base}/renditions/${encodeURIComponent(r.name)}`,
    })),
    links: { self: base, original: `${base}/original`, runs: `${base}/runs` },
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
