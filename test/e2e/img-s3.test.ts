import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import type { Container } from '../../src/container.js';
import { signUrl } from '../../src/domain/signing.js';
import { ImageDelivery } from '../../src/services/image-delivery.js';
import { AUTH } from '../helpers/auth.js';
import { testContainer } from '../helpers/container.js';
import { multipart } from '../helpers/form.js';
import { makeJpeg } from '../helpers/images.js';
import { type S3TestServer, startS3Server, useS3Credentials } from '../helpers/s3-server.js';

// `/img` on two API nodes sharing one bucket (s3rver on loopback). Node B is the same catalog and
// bucket with an ImageDelivery of its own: its own hot cache and single flight, as another process.

describe('/img on S3 storage across API nodes', () => {
  let s3: S3TestServer;
  let container: Container;
  let cleanup: () => Promise<void>;
  let nodeA: FastifyInstance;
  let nodeB: FastifyInstance;
  let restoreEnv: (() => void) | undefined;

  beforeAll(async () => {
    s3 = await startS3Server();
    restoreEnv = useS3Credentials(s3);
    ({ container, cleanup } = await testContainer({
      ASSETPIPE_STORAGE: s3.url,
      ASSETPIPE_WORKERS: '0',
      ASSETPIPE_RATE_LIMIT: '0',
    }));
    nodeA = await buildApp(container);
    const { config } = container;
    const images = new ImageDelivery({
      catalog: container.catalog,
      blobs: container.blobs,
      metrics: container.metrics,
      logger: container.logger,
      signingKeys: container.signingKeys,
      img: config.img,
      presets: config.imagePresets,
      limits: { maxInputPixels: config.maxInputPixels },
      scratchDir: container.runner.scratchRoot,
    });
    nodeB = await buildApp({ ...container, images });
  });

  afterAll(async () => {
    await nodeA?.close();
    await nodeB?.close();
    await cleanup?.();
    await s3?.close();
    restoreEnv?.();
  });

  it('answers a result with one ETag on every node, so a revalidation is a 304 wherever it lands', async () => {
    const form = multipart({
      file: { name: 'photo.jpg', data: await makeJpeg(), contentType: 'image/jpeg' },
    });
    const created = await nodeA.inject({
      method: 'POST',
      url: '/v1/assets',
      ...form,
      headers: { ...AUTH, ...form.headers },
    });
    expect(created.statusCode, created.body).toBe(201);
    const { id } = created.json() as { id: string };
    const url = signUrl(`/img/${id}?w=64&f=jpeg`, { keys: container.signingKeys });

    const first = await nodeA.inject(url);
    expect(first.statusCode, first.body).toBe(200);
    await container.images.flush(); // stored in the bucket now

    const againOnA = await nodeA.inject(url);
    const onB = await nodeB.inject(url);
    expect(againOnA.statusCode).toBe(200);
    expect(onB.statusCode).toBe(200);
    expect(onB.rawPayload.equals(againOnA.rawPayload)).toBe(true);
    expect(onB.headers.etag).toBeDefined();
    expect(againOnA.headers.etag).toBe(onB.headers.etag);
    expect(againOnA.headers['content-type']).toBe('image/jpeg');

    // A cache that got the result from node A revalidates through node B, and the other way round.
    const viaB = await nodeB.inject({ url, headers: { 'if-none-match': String(againOnA.headers.etag) } });
    expect(viaB.statusCode).toBe(304);
    const viaA = await nodeA.inject({ url, headers: { 'if-none-match': String(onB.headers.etag) } });
    expect(viaA.statusCode).toBe(304);
  });
});
