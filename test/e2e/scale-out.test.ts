import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KyselyCatalog } from '../../src/catalog/kysely-catalog.js';
import { openPostgresCatalog } from '../../src/catalog/postgres-catalog.js';
import { type AssetRecord, getJson, getRuns, listAllAssets, upload } from '../helpers/api.js';
import { AUTH } from '../helpers/auth.js';
import { type CliProcess, ensureBuilt, ProcessGroup, type ServerHandle, waitFor } from '../helpers/cli.js';
import { noiseJpeg } from '../helpers/noise-images.js';
import { dropSchemas, probePostgres, TEST_DATABASE_URL, uniqueSchema } from '../helpers/postgres.js';
import { childrenOf } from '../helpers/processes.js';
import { type S3TestServer, startS3Server } from '../helpers/s3-server.js';
import { tempDir } from '../helpers/tmp.js';
import { makeTestClip } from '../helpers/video-server.js';

// The scaled-out shape of a deployment, on one machine: two `serve --no-workers` API nodes and
// three `worker` processes sharing one PostgreSQL (catalog + BullMQ queue) and one S3 endpoint
// (s3rver on loopback), each with its own data directory, so that nothing can pass between them
// except through PostgreSQL and the bucket.

const IMAGES = 100;
const VIDEOS = 3;

const reachable = await probePostgres(TEST_DATABASE_URL);

/** A tus upload started on one API node and finished on the other (upload state lives in S3). */
async function tusAcrossNodes(
  first: string,
  second: string,
  bytes: Buffer,
  filename: string,
): Promise<string> {
  const metadata = [
    `filename ${Buffer.from(filename).toString('base64')}`,
    `projectId ${Buffer.from('default').toString('base64')}`,
  ].join(',');
  const tus = (url: string, method: string, headers: Record<string, string>, body?: Buffer) =>
    fetch(url, {
      method,
      headers: { 'Tus-Resumable': '1.0.0', ...AUTH, ...headers },
      ...(body ? { body } : {}),
      signal: AbortSignal.timeout(60_000),
    });
  const created = await tus(`${first}/v1/uploads/tus`, 'POST', {
    'Upload-Length': String(bytes.length),
    'Upload-Metadata': metadata,
  });
  expect(created.status, await created.clone().text()).toBe(201);
  const path = created.headers.get('location')!;
  const half = Math.floor(bytes.length / 2);
  const patched = await tus(
    `${first}${path}`,
    'PATCH',
    { 'Upload-Offset': '0', 'Content-Type': 'application/offset+octet-stream' },
    bytes.subarray(0, half),
  );
  expect(patched.status, await patched.clone().text()).toBe(204);
  // The other node knows where the upload stands...
  const head = await tus(`${second}${path}`, 'HEAD', {});
  expect(head.status).toBe(200);
  expect(head.headers.get('upload-offset')).toBe(String(half));
  // ...and takes the rest.
  const rest = await tus(
    `${second}${path}`,
    'PATCH',
    { 'Upload-Offset': String(half), 'Content-Type': 'application/offset+octet-stream' },
    bytes.subarray(half),
  );
  const body = (await rest.json()) as { assetId: string };
  expect(rest.status, JSON.stringify(body)).toBe(200);
  return body.assetId;
}

/** Every key the catalog knows for these assets: each version's original and each rendition. */
async function knownKeys(catalog: KyselyCatalog, assetIds: readonly string[]): Promise<Map<string, string>> {
  const known = new Map<string, string>();
  for (const id of assetIds) {
    for (const version of await catalog.listVersions(id)) {
      known.set(version.originalKey, `${id} v${version.version} original`);
      for (const rendition of await catalog.listRenditions(id, version.version)) {
        known.set(rendition.key, `${id} v${version.version} ${rendition.name}`);
      }
    }
  }
  return known;
}

describe.skipIf(!reachable.ok && !process.env.CI)(
  `scaled out: 2 API nodes and 3 workers on PostgreSQL and S3${reachable.ok ? '' : ` (skipped: PostgreSQL not reachable at ${TEST_DATABASE_URL}: ${reachable.ok ? '' : reachable.reason})`}`,
  () => {
    const procs = new ProcessGroup();
    let scratch: { dir: string; cleanup: () => Promise<void> };
    let s3: S3TestServer;
    const schema = uniqueSchema('assetpipe_scale');
    let env: Record<string, string>;
    let api: ServerHandle[] = [];
    let workers: CliProcess[] = [];

    beforeAll(async () => {
      if (!reachable.ok) throw new Error(`PostgreSQL is mandatory in CI: ${reachable.reason}`);
      await ensureBuilt();
      scratch = await tempDir('assetpipe-scale-');
      s3 = await startS3Server();
      env = {
        ASSETPIPE_DATABASE_URL: TEST_DATABASE_URL,
        ASSETPIPE_DATABASE_SCHEMA: schema,
        // 5 processes on a server that other test files use too: keep the pools small.
        ASSETPIPE_DATABASE_POOL: '3',
        ASSETPIPE_STORAGE: s3.url,
        AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
        ASSETPIPE_SIGNING_SECRET: randomBytes(32).toString('hex'),
        ASSETPIPE_JOB_LEASE_MS: '5000',
        ASSETPIPE_WORKERS: '1',
        ASSETPIPE_VIDEO_ABR: 'fixed',
        ASSETPIPE_LOG_LEVEL: 'info',
      };
      // API nodes first: the first one creates the schemas (migrations), the others find them done.
      api = await Promise.all(
        [0, 1].map((i) =>
          procs.serve(join(scratch.dir, `api-${i}`), { env, args: ['--no-workers'], timeoutMs: 60_000 }),
        ),
      );
      workers = await Promise.all(
        [0, 1, 2].map((i) => procs.worker(join(scratch.dir, `worker-${i}`), { env, timeoutMs: 60_000 })),
      );
    }, 180_000);

    afterAll(async () => {
      await procs.killAll();
      await s3?.close();
      if (reachable.ok) await dropSchemas(TEST_DATABASE_URL, schema, `${schema}_queue`).catch(() => {});
      await scratch?.cleanup();
    });

    it('processes 100 images and 3 videos uploaded through both API nodes while a worker is killed mid-video', async () => {
      const [a, b] = api as [ServerHandle, ServerHandle];
      const clips: Buffer[] = [];
      for (let i = 0; i < VIDEOS; i++) {
        const path = join(scratch.dir, `clip-${i}.mp4`);
        await makeTestClip(path, { size: '640x360', rate: '25', durationSec: 8 + i });
        clips.push(await readFile(path));
      }

      // Videos first, so that encodes are running while the images stream in.
      const ids: string[] = [];
      const videoIds: string[] = [];
      videoIds.push(await tusAcrossNodes(a.baseUrl, b.baseUrl, clips[0]!, 'clip-0.mp4'));
      for (const [i, clip] of clips.entries()) {
        if (i === 0) continue;
        const res = await upload((i % 2 ? b : a).baseUrl, clip, `clip-${i}.mp4`, { type: 'video/mp4' });
        expect(res.status, JSON.stringify(res.body)).toBe(201);
        videoIds.push((res.body as AssetRecord).id);
      }
      ids.push(...videoIds);

      // Kill -9 the first worker seen running a ladder encode, while the images are uploading.
      const killed = (async () => {
        const victim = await waitFor(
          async () => {
            for (const worker of workers) {
              const encodes = (await childrenOf(worker.pid)).filter(
                (c) => c.argv[0]?.endsWith('ffmpeg') && c.argv.includes('-force_key_frames:v'),
              );
              if (encodes.length > 0) return { worker, encodes };
            }
            return undefined;
          },
          120_000,
          'a worker to run a ladder encode',
          25,
        );
        // Freeze the encode first, so that it cannot finish between being seen and the kill.
        const signalAll = (signal: NodeJS.Signals) => {
          for (const child of victim.encodes) {
            try {
              process.kill(child.pid, signal);
            } catch {
              // already gone
            }
          }
        };
        signalAll('SIGSTOP');
        await victim.worker.kill();
        // A real crash takes the worker's ffmpeg with it; here it was re-parented: end it too.
        signalAll('SIGKILL');
        // The runs the victim had started and not finished: the one it was encoding is among them.
        const logs = victim.worker.logs();
        const published = new Set(logs.filter((l) => l.msg === 'run published').map((l) => l.runId));
        const runIds = logs
          .filter((l) => l.msg === 'run started' && !published.has(l.runId))
          .map((l) => l.runId as string);
        return { worker: victim.worker, runIds };
      })();

      const nodes = [a.baseUrl, b.baseUrl];
      let next = 0;
      const lane = async () => {
        for (;;) {
          const index = next++;
          if (index >= IMAGES) return;
          const bytes = await noiseJpeg(index, 160 + (index % 7) * 16, 120 + (index % 5) * 12, 80);
          const res = await upload(nodes[index % 2]!, bytes, `img-${index}.jpg`, { type: 'image/jpeg' });
          expect(res.status, JSON.stringify(res.body)).toBe(201);
          ids.push((res.body as AssetRecord).id);
        }
      };
      await Promise.all([lane(), lane(), lane(), lane()]);
      const victim = await killed;
      expect(victim.worker.exit?.signal).toBe('SIGKILL');

      // Every asset ends ready; both API nodes tell the same story.
      const settled = await waitFor(
        async () => {
          const all = await listAllAssets(a.baseUrl, '', 200);
          return all.length === IMAGES + VIDEOS && all.every((x) => x.status !== 'processing')
            ? all
            : undefined;
        },
        300_000,
        'every asset to finish processing',
        500,
      );
      const notReady = settled.filter((x) => x.status !== 'ready');
      expect(notReady.map((x) => `${x.id} ${x.status} ${x.error ?? ''}`)).toEqual([]);
      expect(new Set(settled.map((x) => x.id))).toEqual(new Set(ids));
      const fromB = await listAllAssets(b.baseUrl, '', 200);
      expect(fromB.filter((x) => x.status === 'ready')).toHaveLength(IMAGES + VIDEOS);

      // The killed worker was encoding one of the videos: its run shows the interrupted attempt
      // and was finished by another worker.
      const interrupted: string[] = [];
      for (const id of videoIds) {
        const runs = await getRuns(a.baseUrl, id);
        const run = runs[0]!;
        expect(run.status).toBe('succeeded');
        if (victim.runIds.includes(run.id)) {
          const encodes = run.steps.filter((s) => s.name === 'encode');
          expect(encodes.length, JSON.stringify(run.steps)).toBeGreaterThanOrEqual(2);
          expect(encodes.at(-1)?.status).toBe('succeeded');
          expect(encodes.slice(0, -1).every((s) => s.status !== 'succeeded')).toBe(true);
          interrupted.push(id);
        }
      }
      expect(interrupted, 'the killed worker was running one of the videos').toHaveLength(1);

      // The bucket holds exactly what the catalog knows: no orphan, no output stored twice under two
      // keys, nothing missing.
      const catalog = await openPostgresCatalog(TEST_DATABASE_URL, { schema, maxConnections: 2 });
      try {
        const known = await knownKeys(catalog, ids);
        const inBucket = await s3.listKeys();
        const orphans = inBucket.filter((key) => !known.has(key));
        expect(orphans).toEqual([]);
        // Nor any multipart upload left open (invisible in a listing, but stored and billed).
        expect(await s3.listUploads()).toEqual([]);
        const missing = [...known.keys()].filter((key) => !inBucket.includes(key));
        expect(missing).toEqual([]);
        // Step outputs have one key each, whoever wrote them and however often: one object per
        // rendition of the interrupted video, no second copy of any of them.
        const video = interrupted[0]!;
        const derived = inBucket.filter((key) => key.startsWith(`derived/${video}/`));
        const renditions = (await catalog.listRenditions(video, 1)).map((r) => r.key);
        expect(derived.sort()).toEqual([...new Set(renditions)].sort());
      } finally {
        await catalog.close();
      }

      // A video is served from S3 through either node.
      const record = (await getJson<AssetRecord & { hls?: string }>(`${b.baseUrl}/v1/assets/${videoIds[0]}`))
        .body;
      expect(record.hls).toBeTruthy();
      const master = await fetch(new URL(record.hls!, b.baseUrl));
      expect(master.status).toBe(200);
      expect(await master.text()).toMatch(/^#EXTM3U/);
    }, 600_000);
  },
);
