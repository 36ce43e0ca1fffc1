import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { buildApp } from '../../src/app.js';
import type { Container } from '../../src/container.js';
import { run } from '../../src/media/ffmpeg.js';
import { startWorkers } from '../../src/workers.js';
import { type AssetRecord, getJson, getRuns, upload } from './api.js';
import { testContainer, waitFor } from './container.js';

/** The fields of a video's asset record the video tests read. */
export type VideoRecord = AssetRecord & {
  hls: string | null;
  dash: string | null;
  download: string | null;
  poster: { jpeg: string | null; webp: string | null } | null;
  ladder: {
    rungs: {
      id: string;
      codec: string;
      width: number;
      height: number;
      frameRate: number;
      codecs: string | null;
    }[];
  } | null;
};

export interface VideoServer {
  baseUrl: string;
  container: Container;
  close(): Promise<void>;
}

/** assetpipe in this process: a real container with `env`, Fastify on 127.0.0.1, and its workers. */
export async function startVideoServer(env: Record<string, string>): Promise<VideoServer> {
  const h = await testContainer(env);
  const app = await buildApp(h.container);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no listening address');
  const workers = startWorkers(h.container);
  return {
    baseUrl: `http://127.0.0.1:${address.port}`,
    container: h.container,
    async close() {
      await workers.stop();
      // fetch() keeps connections open after a streamed body was read (seen after downloading
      // download.mp4); Fastify's close would wait for them.
      app.server.closeAllConnections();
      await app.close();
      await h.cleanup();
    },
  };
}

/** testsrc2 + a sine as H.264/AAC MP4, for uploads. */
export async function makeTestClip(
  path: string,
  options: { size: string; rate: string; durationSec: number },
): Promise<void> {
  const { size, rate, durationSec } = options;
  await run(
    'ffmpeg',
    [
      ...['-hide_banner', '-v', 'error', '-y'],
      ...['-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=${rate}:duration=${durationSec}`],
      ...['-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:duration=${durationSec}`],
      ...['-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-c:a', 'aac', path],
    ],
    { timeoutMs: 120_000 },
  );
}

/**
 * Uploads the file at `path` and waits until it is processed; throws with the run history when it
 * did not end `ready`.
 */
export async function uploadReadyVideo(
  baseUrl: string,
  path: string,
  timeoutMs = 300_000,
): Promise<VideoRecord> {
  const created = await upload(baseUrl, await readFile(path), basename(path), { type: 'video/mp4' });
  if (created.status !== 201) throw new Error(`upload: ${created.status} ${JSON.stringify(created.body)}`);
  const id = (created.body as AssetRecord).id;
  const asset = await waitFor(
    async () => {
      const { body } = await getJson<VideoRecord>(`${baseUrl}/v1/assets/${id}`);
      return body.status === 'processing' ? undefined : body;
    },
    timeoutMs,
    `${basename(path)} to be processed`,
  );
  if (asset.status !== 'ready') {
    throw new Error(
      `${basename(path)} ended ${asset.status}: ${asset.error}\n${JSON.stringify(await getRuns(baseUrl, id))}`,
    );
  }
  return asset;
}
