import { expect } from 'vitest';
import type { Catalog } from '../../src/catalog/catalog.js';
import { newId } from '../../src/domain/ids.js';

/**
 * Two connections (or processes' catalogs) race to claim the completion of 20 open uploads, each
 * asked twice on each side: exactly one claim per upload may win. Returns the upload ids.
 */
export async function expectOneClaimPerUpload(
  a: Catalog,
  b: Catalog,
  protocol: 'tus' | 'multipart',
): Promise<string[]> {
  const ids = Array.from({ length: 20 }, () => newId('upl'));
  for (const id of ids) {
    await a.createUpload({
      id,
      protocol,
      projectId: 'default',
      mediaId: null,
      filename: 'f.bin',
      declaredType: null,
      size: null,
      key: `uploads/${id}`,
      storeUploadId: null,
      checksum: null,
      state: 'open',
      assetId: null,
      createdBy: null,
      createdAt: '2024-01-01T00:00:00.000Z',
      expiresAt: '2024-01-02T00:00:00.000Z',
    });
  }
  const results = await Promise.all(
    ids.map((id) => Promise.all([a, b, a, b].map((catalog) => catalog.claimUploadCompletion(id)))),
  );
  expect(results.map((claims) => claims.filter(Boolean).length)).toEqual(ids.map(() => 1));
  return ids;
}
