import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AssetRecord, getRuns, listAllAssets } from '../helpers/api.js';
import { AUTH } from '../helpers/auth.js';
import { type CliProcess, ensureBuilt, ProcessGroup, type ServerHandle, waitFor } from '../helpers/cli.js';
import { noiseJpeg } from '../helpers/noise-images.js';
import { findPostgresBin, type PrivatePostgres, startPrivatePostgres } from '../helpers/private-postgres.js';
import { type S3TestServer, startS3Server } from '../helpers/s3-server.js';
import { tempDir } from '../helpers/tmp.js';
import { makeTestClip } from '../helpers/video-server.js';

// PostgreSQL goes away for 10 s under a running deployment (an API node and a worker on
// PostgreSQL + S3). The test's own PostgreSQL server is stopped (pg_ctl stop -m fast: sessions
// are terminated, new connections refused), never the shared one other test files use.

const IMAGES = 24;
const OUTAGE_MS = 10_000;
/** A request slower than this is a hang: an outage must be answered, not waited out by the client. */
const HANG_MS = 20_000;

const bin = findPostgresBin();

interface Answer {
  status: number;
  code?: string;
  retryAfter: string | null;
  contentType: string;
}

async function answerOf(res: Response): Promise<Answer> {
  const text = await res.text();
  let code: string | undefined;
  try {
    code = (JSON.parse(text) as { code?: string }).code;
  } catch {
    // not JSON
  }
  return {
    status: res.status,
    code,
    retryAfter: res.headers.get('retry-after'),
    contentType: res.headers.get('content-type') ?? '',
  };
}

describe.skipIf('missing' in bin && !process.env.CI)(
  `PostgreSQL stopped for 10 s under load${'missing' in bin ? ` (skipped: ${bin.missing})` : ''}`,
  () => {
    const procs = new ProcessGroup();
    let scratch: { dir: string; cleanup: () => Promise<void> };
    let s3: S3TestServer;
    let db: PrivatePostgres;
    let server: ServerHandle;
    let worker: CliProcess;

    beforeAll(async () => {
      if ('missing' in bin) throw new Error(`PostgreSQL server binaries are mandatory in CI: ${bin.missing}`);
      await ensureBuilt();
      scratch = await tempDir('assetpipe-outage-');
      s3 = await startS3Server();
      db = await startPrivatePostgres(bin.dir);
      const env = {
        ASSETPIPE_DATABASE_URL: db.url,
        ASSETPIPE_STORAGE: s3.url,
        AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
        ASSETPIPE_SIGNING_SECRET: randomBytes(32).toString('hex'),
        ASSETPIPE_JOB_LEASE_MS: '5000',
        // One attempt per job: a job that spent its attempt on the outage would fail its asset, so
        // this shows that workers wait the outage out instead.
        ASSETPIPE_JOB_ATTEMPTS: '1',
        ASSETPIPE_WORKERS: '1',
        ASSETPIPE_VIDEO_ABR: 'fixed',
      };
      server = await procs.serve(join(scratch.dir, 'api'), {
        env,
        args: ['--no-workers'],
        timeoutMs: 60_000,
      });
      worker = await procs.worker(join(scratch.dir, 'worker'), { env, timeoutMs: 60_000 });
    }, 180_000);

    afterAll(async () => {
      await procs.killAll();
      await db?.destroy();
      await s3?.close();
      await scratch?.cleanup();
    });

    it('answers 503 problems while it is down and completes every upload and job once it is back', async () => {
      const base = server.baseUrl;
      const answers: Answer[] = [];
      // A refused or cut connection means a process died: say which and show its output.
      const reach = async (url: string, init: RequestInit): Promise<Response> => {
        try {
          return await fetch(url, init);
        } catch (err) {
          throw new Error(
            `${init.method ?? 'GET'} ${url}: ${(err as Error).message} (${String((err as Error).cause)})\n` +
              `${server.child.dump()}\n${worker.dump()}`,
          );
        }
      };
      const request = async (path: string, init: RequestInit = {}): Promise<Answer> => {
        const res = await reach(`${base}${path}`, {
          ...init,
          headers: { ...AUTH, ...(init.headers as Record<string, string> | undefined) },
          signal: AbortSignal.timeout(HANG_MS),
        });
        const answer = await answerOf(res);
        answers.push(answer);
        return answer;
      };

      // A video whose encode is under way when the database goes.
      const clipPath = join(scratch.dir, 'clip.mp4');
      await makeTestClip(clipPath, { size: '640x360', rate: '25', durationSec: 10 });
      const form = new FormData();
      form.append('file', new Blob([await readFile(clipPath)], { type: 'video/mp4' }), 'clip.mp4');
      const videoRes = await fetch(`${base}/v1/assets`, { method: 'POST', headers: AUTH, body: form });
      expect(videoRes.status).toBe(201);
      const video = (await videoRes.json()) as AssetRecord;

      // Uploads keep coming, before, during and after the outage; a client retries a 503 after
      // Retry-After (capped here to keep the test short).
      const uploaded: string[] = [];
      let next = 0;
      const lane = async () => {
        for (;;) {
          const index = next++;
          if (index >= IMAGES) return;
          const bytes = await noiseJpeg(index, 200, 150, 80);
          for (let attempt = 1; ; attempt++) {
            const body = new FormData();
            body.append('file', new Blob([bytes], { type: 'image/jpeg' }), `img-${index}.jpg`);
            const res = await reach(`${base}/v1/assets`, {
              method: 'POST',
              headers: AUTH,
              body,
              signal: AbortSignal.timeout(HANG_MS),
            });
            if (res.status === 201) {
              uploaded.push(((await res.json()) as AssetRecord).id);
              answers.push({ status: 201, retryAfter: null, contentType: '' });
              break;
            }
            const answer = await answerOf(res);
            answers.push(answer);
            if (res.status !== 503 || attempt > 100)
              throw new Error(`upload ${index}: ${JSON.stringify(answer)}`);
            await sleep(Math.min(1000, Number(answer.retryAfter ?? 1) * 1000));
          }
          await sleep(150);
        }
      };
      const uploading = Promise.all([lane(), lane()]);
      uploading.catch(() => {}); // awaited below; a failure meanwhile must not go unhandled

      // Stop PostgreSQL once the video's encode has started.
      await waitFor(
        async () => (await getRuns(base, video.id))[0]?.steps.some((s) => s.name === 'encode'),
        60_000,
        'the video encode to start',
        100,
      );
      await db.stop();
      const down = Date.now();
      const during: Answer[] = [];
      while (Date.now() - down < OUTAGE_MS) {
        during.push(await request('/v1/assets?limit=5'));
        during.push(await request('/readyz'));
        await sleep(500);
      }
      await db.start();

      // While it was down: every answer was a 503 problem with Retry-After, none hung or crashed.
      expect(during.length).toBeGreaterThan(4);
      for (const answer of during) {
        expect(answer.status, JSON.stringify(answer)).toBe(503);
        expect(answer.contentType).toMatch(/^application\/problem\+json/);
        expect(answer.code).toBe('UNAVAILABLE');
        expect(answer.retryAfter).toMatch(/^\d+$/);
      }
      expect(server.child.running, server.child.dump()).toBe(true);
      expect(worker.running, worker.dump()).toBe(true);

      // Once it is back: the uploads that were refused get in, and everything is processed.
      await uploading;
      expect(uploaded).toHaveLength(IMAGES);
      expect(answers.filter((a) => a.status === 503 && a.code === 'UNAVAILABLE').length).toBeGreaterThan(0);
      expect(answers.filter((a) => a.status >= 500 && a.status !== 503)).toEqual([]);

      const all = await waitFor(
        async () => {
          const items = await listAllAssets(base, '', 100);
          return items.length === IMAGES + 1 && items.every((x) => x.status !== 'processing')
            ? items
            : undefined;
        },
        240_000,
        'every asset to finish processing after the outage',
        500,
      );
      expect(all.filter((x) => x.status !== 'ready').map((x) => `${x.id} ${x.status} ${x.error}`)).toEqual(
        [],
      );
      expect((await request('/readyz')).status).toBe(200);
      expect(server.child.running && worker.running).toBe(true);
    }, 600_000);
  },
);
