import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Container } from '../../src/container.js';
import { getJson, getRuns } from '../helpers/api.js';
import { checkPackage, downloadPackage } from '../helpers/ladder-checks.js';
import { tempDir } from '../helpers/tmp.js';
import {
  makeTestClip,
  startVideoServer,
  uploadReadyVideo,
  type VideoRecord,
  type VideoServer,
} from '../helpers/video-server.js';

// A source longer than ASSETPIPE_VIDEO_CHUNK_SEC goes through chunk jobs: the encode step queues
// one job per chunk and waits, chunk worker slots encode the chunks, and the encode step joins them
// without re-encoding. Here: 9 s, 1 s segments, 3 s chunks
// -> 3 chunks, two run slots and two chunk slots. The published package must pass every ladder check of the issue
// (keyframes identical across rungs, duration within a frame, silent decode across the joints,
// BANDWIDTH vs measured), and no chunk file may be left in the blob store.

const CLIP_SEC = 9;
let dir: string;
let source: string;
let cleanup: (() => Promise<void>) | undefined;
let server: VideoServer | undefined;
let container: Container;
let baseUrl: string;
let asset: VideoRecord;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('assetpipe-video-chunked-'));
  source = join(dir, 'film.mp4');
  await makeTestClip(source, { size: '854x480', rate: '30000/1001', durationSec: CLIP_SEC });
  server = await startVideoServer({
    ASSETPIPE_VIDEO_SEGMENT_SEC: '1',
    ASSETPIPE_VIDEO_CHUNK_SEC: '3',
    ASSETPIPE_VIDEO_ABR: 'fixed',
    ASSETPIPE_WORKERS: '2',
  });
  ({ baseUrl, container } = server);
  asset = await uploadReadyVideo(baseUrl, source);
}, 420_000);

afterAll(async () => {
  await server?.close();
  await cleanup?.();
});

describe('a long video encoded by chunk jobs', () => {
  it('records the chunk jobs and the encode step that waited for them in the run history', async () => {
    const [runRecord] = await getRuns(baseUrl, asset.id);
    expect(runRecord?.status).toBe('succeeded');
    const steps = runRecord?.steps ?? [];
    const chunkSteps = steps.filter((s) => /^encode\.chunk-\d+$/.test(s.name));
    expect(chunkSteps.map((s) => `${s.name}:${s.status}`).sort()).toEqual([
      'encode.chunk-0:succeeded',
      'encode.chunk-1:succeeded',
      'encode.chunk-2:succeeded',
    ]);
    const encodes = steps.filter((s) => s.name === 'encode');
    expect(encodes).toHaveLength(1);
    expect(encodes[0]).toMatchObject({
      status: 'succeeded',
      output: expect.objectContaining({ mode: 'chunked', chunks: 3 }),
    });
    const runs = await getJson<{ items: { progress: number }[] }>(`${baseUrl}/v1/assets/${asset.id}/runs`);
    expect(runs.body.items[0]?.progress).toBe(100);
  });

  it('publishes a package that passes every ladder check across the chunk joints', async () => {
    const local = join(dir, 'package');
    await downloadPackage({ baseUrl, masterUrl: asset.hls ?? '', dir: local });
    const rungs = asset.ladder?.rungs ?? [];
    expect(rungs.map((r) => `${r.width}x${r.height}`)).toEqual(['854x480', '640x360']);
    const report = await checkPackage({
      dir: local,
      source,
      rungs,
      audio: { codec: 'aac', channels: 2 },
    });
    expect(report.findings).toEqual([]);
    expect(report.renditions.every((r) => r.decodeErrors === '')).toBe(true);
  });

  it('leaves no chunk file in the blob store', async () => {
    const left: string[] = [];
    for await (const info of container.blobs.list(`derived/${asset.id}/v1/encode/chunks/`))
      left.push(info.key);
    expect(left).toEqual([]);
  });
});
