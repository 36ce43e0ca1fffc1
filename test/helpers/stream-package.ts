import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { expect } from 'vitest';
import type { Container } from '../../src/container.js';
import type { Asset } from '../../src/domain/asset.js';
import { newId } from '../../src/domain/ids.js';
import { DEFAULT_LADDER_SETTINGS, planLadder } from '../../src/domain/ladder.js';
import { run } from '../../src/media/ffmpeg.js';
import { encodeLadder } from '../../src/media/ladder-encode.js';
import { ladderSourceFromProbe } from '../../src/media/ladder-source.js';
import { packageLadder } from '../../src/media/package-ladder.js';
import { probeVideo } from '../../src/media/video-probe.js';
import { streamContentType } from '../../src/pipeline/video/stream-files.js';
import { originalKey, stepOutputKey } from '../../src/storage/keys.js';

// A real stream package stored as the video pipeline publishes one, without running the pipeline:
// for tests of delivery and checking that must not depend on the encode steps.

const RUN = { timeoutMs: 120_000 };
const CLIP_SEC = 2;

export interface StreamPackage {
  /** Package path -> bytes. */
  files: Map<string, Buffer>;
  source: Buffer;
  durationSec: number;
}

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile()).map((e) => relative(dir, join(e.parentPath, e.name)));
}

/**
 * A real HLS + DASH package (encodeLadder + packageLadder) of a 2 s 320x180 testsrc2 + sine clip
 * with 1 s segments: one 180p rung and the AAC rendition, read into memory.
 */
export async function makeStreamPackage(dir: string): Promise<StreamPackage> {
  const sourcePath = join(dir, 'source.mp4');
  await run(
    'ffmpeg',
    [
      ...['-hide_banner', '-v', 'error', '-y'],
      ...['-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:duration=${CLIP_SEC}`],
      ...['-filter_complex', `testsrc2=size=320x180:rate=25:duration=${CLIP_SEC}[v]`],
      ...['-map', '[v]', '-map', '0:a', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p'],
      ...['-c:a', 'aac', sourcePath],
    ],
    RUN,
  );
  const probe = await probeVideo(sourcePath, RUN);
  const plan = planLadder(ladderSourceFromProbe(probe), {
    ...DEFAULT_LADDER_SETTINGS,
    segmentDurationSec: 1,
  });
  const outDir = join(dir, 'package');
  const layout = await encodeLadder(plan, {
    input: sourcePath,
    outDir,
    sourceFrameRateFps: probe.video?.frameRate ?? null,
    durationSec: probe.durationSec,
    preset: 'ultrafast',
    ...RUN,
  });
  const packaged = await packageLadder({
    plan,
    layout,
    outDir,
    expectedDurationSec: probe.durationSec ?? CLIP_SEC,
    ...RUN,
  });
  expect(packaged.findings).toEqual([]);
  const files = new Map<string, Buffer>();
  for (const path of await listFiles(outDir)) files.set(path, await readFile(join(outDir, path)));
  return { files, source: await readFile(sourcePath), durationSec: probe.durationSec ?? CLIP_SEC };
}

/** The blob key of package file `path` of a version, as the encode step stores it. */
export const streamBlobKey = (assetId: string, version: number, path: string) =>
  stepOutputKey(assetId, version, 'encode', `stream/${path}`);

/** Stores `bytes` as the package file `path` of `version`, blob and rendition row alike. */
export async function storeStreamFile(
  container: Container,
  assetId: string,
  version: number,
  path: string,
  bytes: Buffer,
): Promise<string> {
  const key = streamBlobKey(assetId, version, path);
  await container.blobs.put(key, bytes);
  await container.catalog.putRendition({
    assetId,
    version,
    name: `stream/${path}`,
    key,
    contentType: streamContentType(path),
    size: bytes.length,
    createdAt: new Date().toISOString(),
  });
  return key;
}

/**
 * Stores `pkg` as version 1 (and more, when asked) of a new video, published `ready` as the
 * pipeline publishes one unless `publish` is false. `links` adds to the record's `stream` facts.
 */
export async function storeReadyVideo(
  container: Container,
  pkg: StreamPackage,
  options: { projectId?: string; versions?: number; links?: Record<string, unknown>; publish?: boolean } = {},
): Promise<Asset> {
  const { catalog, blobs } = container;
  const at = new Date().toISOString();
  const assetId = newId('ast');
  const sha256 = createHash('sha256').update(pkg.source).digest('hex');
  for (let version = 1; version <= (options.versions ?? 1); version++) {
    const key = originalKey(newId('upl'));
    await blobs.put(key, pkg.source);
    const runId = newId('run');
    const file = {
      filename: 'clip.mp4',
      type: 'video' as const,
      mimeType: 'video/mp4',
      size: pkg.source.length,
    };
    if (version === 1) {
      await catalog.createAssetWithRun(
        {
          id: assetId,
          projectId: options.projectId ?? 'default',
          ...file,
          sha256,
          originalKey: key,
          uploadedAt: at,
        },
        runId,
      );
    } else {
      await catalog.createVersionWithRun(
        { assetId, ...file, sha256, originalKey: key, createdAt: at },
        runId,
      );
    }
    for (const [path, bytes] of pkg.files) await storeStreamFile(container, assetId, version, path, bytes);
    if (options.publish === false) continue;
    await catalog.startRun(runId, at);
    await catalog.publishRun(
      runId,
      {
        width: 320,
        height: 180,
        durationSec: pkg.durationSec,
        extra: {
          stream: {
            hls: 'master.m3u8',
            dash: 'manifest.mpd',
            poster: null,
            storyboard: null,
            download: null,
            ...options.links,
          },
        },
      },
      at,
    );
  }
  const asset = await catalog.getAsset(assetId);
  if (!asset) throw new Error(`asset ${assetId} was not stored`);
  if (options.publish !== false && asset.status !== 'ready')
    throw new Error(`asset ${assetId} did not become ready`);
  return asset;
}
