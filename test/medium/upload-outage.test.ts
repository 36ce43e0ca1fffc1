import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Catalog } from '../../src/catalog/catalog.js';
import type { Container } from '../../src/container.js';
import type { Principal } from '../../src/domain/api-key.js';
import { isOutage } from '../../src/lib/outage.js';
import { testContainer, waitFor } from '../helpers/container.js';
import { noiseJpeg } from '../helpers/noise-images.js';

// A multipart completion whose catalog goes away halfway (claimed, the parts joined, then the
// asset cannot be written and the claim cannot be given back): the client's retry must succeed
// once the catalog is back, with the bytes it already sent. The catalog is the real SQLite one;
// only the two calls the outage hits are made to fail, as node-postgres fails them.

const PRINCIPAL: Principal = { keyId: 'admin', scopes: ['admin'], projectId: null };

function refused(): Error {
  return Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
}

/** Makes `method` of the catalog fail like an unreachable server while `down()` says so. */
function failWhileDown<K extends keyof Catalog>(catalog: Catalog, method: K, down: () => boolean): void {
  const real = (catalog[method] as (...args: unknown[]) => Promise<unknown>).bind(catalog);
  (catalog as unknown as Record<string, unknown>)[method] = async (...args: unknown[]) => {
    if (down()) throw refused();
    return real(...args);
  };
}

describe('multipart completion interrupted by a catalog outage', () => {
  let h: Awaited<ReturnType<typeof testContainer>>;
  let container: Container;

  beforeEach(async () => {
    h = await testContainer({ ASSETPIPE_WORKERS: '0' });
    container = h.container;
  });

  afterEach(async () => {
    await h.cleanup();
  });

  it('answers 503 while it lasts, keeps the joined bytes, and completes on the retry', async () => {
    const bytes = await noiseJpeg(1, 320, 240);
    const session = await container.uploads.startMultipart(PRINCIPAL, { filename: 'photo.jpg' });
    const part = await container.uploads.putPart(session.id, 1, Readable.from([bytes]));

    let down = true;
    failWhileDown(container.catalog, 'createAssetWithRun', () => down);
    failWhileDown(container.catalog, 'reopenUpload', () => down);

    const first = await container.uploads
      .completeMultipart(PRINCIPAL, session.id, [{ partNumber: 1, etag: part.etag }])
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    expect(isOutage(first), String(first)).toBe(true);

    // While the claim cannot be given back, a retry is told to come back later, not refused.
    const during = await container.uploads
      .completeMultipart(PRINCIPAL, session.id, [{ partNumber: 1, etag: part.etag }])
      .then(
        () => undefined,
        (err: unknown) => err as { code?: string; status?: number },
      );
    expect(during?.code).toBe('UNAVAILABLE');
    expect(during?.status).toBe(503);

    // The joined object is still there: nothing the client sent was thrown away.
    expect(await container.blobs.head(session.key)).toMatchObject({ size: bytes.length });

    down = false;
    const result = await waitFor(
      () =>
        container.uploads.completeMultipart(PRINCIPAL, session.id, undefined).catch((err: unknown) => {
          if ((err as { status?: number }).status === 503) return undefined;
          throw err;
        }),
      15_000,
      'the completion to succeed once the catalog is back',
    );
    expect(result.asset.sha256).toBeTruthy();
    expect(result.asset.size).toBe(bytes.length);
    expect((await container.catalog.getUpload(session.id))?.state).toBe('completed');
  });

  it('takes over a completion whose process died (a stale claim), but never a live one', async () => {
    const bytes = await noiseJpeg(2, 320, 240);
    const session = await container.uploads.startMultipart(PRINCIPAL, { filename: 'photo.jpg' });
    const part = await container.uploads.putPart(session.id, 1, Readable.from([bytes]));
    const parts = [{ partNumber: 1, etag: part.etag }];

    // Another API node claimed the completion a moment ago and is still at it: the retry waits.
    const now = Date.now();
    const recent = new Date(now - 60_000).toISOString();
    expect(
      await container.catalog.claimUploadCompletion(session.id, { at: recent, staleBefore: recent }),
    ).toBe(true);
    const refused = await container.uploads.completeMultipart(PRINCIPAL, session.id, parts).then(
      () => undefined,
      (err: unknown) => err as { code?: string },
    );
    expect(refused?.code).toBe('UPLOAD_CONFLICT');

    // That node was killed two hours ago instead: its claim is stale and the retry completes.
    await container.catalog.reopenUpload(session.id);
    const longAgo = new Date(now - 2 * 3600_000).toISOString();
    expect(
      await container.catalog.claimUploadCompletion(session.id, { at: longAgo, staleBefore: longAgo }),
    ).toBe(true);
    const result = await container.uploads.completeMultipart(PRINCIPAL, session.id, parts);
    expect(result.asset.size).toBe(bytes.length);
    expect((await container.catalog.getUpload(session.id))?.state).toBe('completed');
  });
});
