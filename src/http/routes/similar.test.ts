import { describe, expect, it } from 'vitest';
import type { Asset } from '../../domain/asset.js';
import { similarityProblem } from './similar.js';

function asset(overrides: Partial<Asset>): Asset {
  return {
    id: 'ast_1',
    projectId: 'default',
    filename: 'a.jpg',
    type: 'image',
    mimeType: 'image/jpeg',
    size: 1,
    sha256: 'x',
    status: 'ready',
    error: null,
    width: 1,
    height: 1,
    format: 'jpeg',
    blurhash: null,
    durationSec: null,
    perceptualHash: '0123456789abcdef',
    versionNumber: 1,
    uploadedAt: '2024-01-01T00:00:00.000Z',
    processedAt: '2024-01-01T00:00:00.000Z',
    extra: {},
    mediaId: null,
    tags: [],
    duplicateOf: null,
    deletedAt: null,
    ...overrides,
  };
}

describe('similarityProblem', () => {
  it('accepts a ready image with a perceptual hash', () => {
    expect(similarityProblem(asset({}))).toBeUndefined();
  });

  it.each([
    ['a video', { type: 'video', perceptualHash: null }, 422, 'images only'],
    ['an audio file', { type: 'audio', perceptualHash: null }, 422, 'images only'],
    ['a processing image', { status: 'processing', perceptualHash: null }, 409, 'still being processed'],
    ['a reprocessing image (old hash kept)', { status: 'processing' }, 409, 'still being processed'],
    [
      'a failed image',
      { status: 'failed', error: 'corrupt header', perceptualHash: null },
      409,
      'corrupt header',
    ],
    ['a ready image without a hash', { perceptualHash: null }, 409, 'reprocess'],
  ] as [string, Partial<Asset>, number, string][])(
    'refuses %s with %i',
    (_name, overrides, status, detail) => {
      const problem = similarityProblem(asset(overrides));
      expect(problem?.status).toBe(status);
      expect(problem?.message).toContain(detail);
    },
  );
});
