import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import type { Container } from '../../src/container.js';
import { startWorkers } from '../../src/workers.js';
import { AUTH, TEST_ADMIN_KEY } from '../helpers/auth.js';
import { launchChromium } from '../helpers/browser.js';
import { testContainer, waitFor } from '../helpers/container.js';
import { makeWav, sha256 } from '../helpers/s3-multipart-client.js';
import { type S3TestServer, startS3Server, useS3Credentials } from '../helpers/s3-server.js';

// A browser uploads straight to the bucket: assetpipe hands out real S3 presigned part URLs, the
// page PUTs the parts cross-origin to the S3 endpoint (CORS, reading each part's ETag) and
// completes through the API. Nothing but the API calls reaches assetpipe.

const MiB = 1024 * 1024;

interface PageResult {
  urls: string[];
  status: number;
  body: { id?: string; sha256?: string; size?: number; status?: string };
}

describe('S3-style multipart from a browser, straight to S3', () => {
  let s3: S3TestServer;
  let h: Awaited<ReturnType<typeof testContainer>>;
  let container: Container;
  let app: FastifyInstance;
  let workers: { stop: () => Promise<void> };
  let baseUrl: string;
  let browser: Browser;
  let restoreEnv: (() => void) | undefined;

  beforeAll(async () => {
    s3 = await startS3Server();
    restoreEnv = useS3Credentials(s3);
    h = await testContainer({ ASSETPIPE_STORAGE: s3.url, ASSETPIPE_WORKERS: '1', ASSETPIPE_RATE_LIMIT: '0' });
    container = h.container;
    app = await buildApp(container);
    workers = startWorkers(container);
    await app.listen({ host: '127.0.0.1', port: 0 });
    baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await workers?.stop();
    await app?.close();
    await h?.cleanup();
    await s3?.close();
    restoreEnv?.();
  });

  it('PUTs parts to presigned S3 URLs and completes into a ready asset with the same bytes', async () => {
    const wav = makeWav(6 * MiB + 4 * 1000); // two parts: S3 wants every part but the last >= 5 MiB
    const page = await browser.newPage();
    try {
      // A document of the API's origin without the web page's CSP (which allows only 'self'):
      // an uploader page served next to the API, as behind one reverse proxy.
      await page.goto(`${baseUrl}/healthz`);
      const result = await page.evaluate(
        async ({ base64, key }): Promise<PageResult> => {
          const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
          const api = (path: string, body: unknown) =>
            fetch(path, {
              method: 'POST',
              headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
              body: JSON.stringify(body),
            });
          const started = (await (await api('/v1/uploads/multipart', { filename: 'take-1.wav' })).json()) as {
            uploadId: string;
          };
          const signed = (await (
            await api(`/v1/uploads/multipart/${started.uploadId}/sign`, { partNumbers: [1, 2] })
          ).json()) as { urls: Record<string, string> };
          const cut = 5 * 1024 * 1024;
          const pieces = [bytes.slice(0, cut), bytes.slice(cut)];
          const parts = await Promise.all(
            pieces.map(async (piece, i) => {
              const res = await fetch(signed.urls[String(i + 1)]!, { method: 'PUT', body: piece });
              if (!res.ok) throw new Error(`part ${i + 1}: ${res.status} ${await res.text()}`);
              const etag = res.headers.get('etag');
              if (!etag)
                throw new Error(`part ${i + 1}: the ETag header is not readable (CORS ExposeHeaders)`);
              return { partNumber: i + 1, etag };
            }),
          );
          const done = await api(`/v1/uploads/multipart/${started.uploadId}/complete`, { parts });
          return {
            urls: Object.values(signed.urls),
            status: done.status,
            body: (await done.json()) as PageResult['body'],
          };
        },
        { base64: wav.toString('base64'), key: TEST_ADMIN_KEY },
      );

      // The part URLs are S3's own presigned URLs, not assetpipe's.
      for (const url of result.urls) {
        expect(url.startsWith(`${s3.endpoint}/`)).toBe(true);
        expect(url).toMatch(/X-Amz-Signature=[0-9a-f]{64}/);
        expect(url).not.toMatch(/x-amz-checksum|x-amz-sdk-checksum/i);
      }
      expect(s3.requests().filter((r) => r.startsWith('PUT ') && r.includes('partNumber='))).toHaveLength(2);
      expect(result.status, JSON.stringify(result.body)).toBe(201);
      expect(result.body.sha256).toBe(sha256(wav));
      expect(result.body.size).toBe(wav.length);

      const id = result.body.id!;
      const ready = await waitFor(
        async () => {
          const res = await fetch(`${baseUrl}/v1/assets/${id}`, { headers: AUTH });
          const asset = (await res.json()) as { status: string; error: string | null };
          return asset.status === 'processing' ? undefined : asset;
        },
        60_000,
        'the uploaded WAV to be processed',
      );
      expect(ready.status, ready.error ?? '').toBe('ready');
      const original = await fetch(`${baseUrl}/v1/assets/${id}/original`, { headers: AUTH });
      expect(sha256(Buffer.from(await original.arrayBuffer()))).toBe(sha256(wav));
      expect(await s3.listUploads()).toEqual([]);
    } finally {
      await page.close();
    }
  }, 120_000);
});
