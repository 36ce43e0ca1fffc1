import { describe, expect, it } from 'vitest';
import { imageErrorToAppError } from './image-errors.js';

describe('imageErrorToAppError', () => {
  it.each([
    ['VipsJpeg: Premature end of JPEG file', /truncated or incomplete/],
    // Seen under load: libvips' warning text went elsewhere, only sharp's generic line is left.
    ['Warning treated as error due to failOn setting', /truncated or damaged/],
    ['Input buffer has corrupt header: VipsJpeg: ...', /header is damaged/],
    ['Input image exceeds pixel limit', /more pixels than this server accepts/],
    ['VipsJpeg: Corrupt JPEG data: bad Huffman code', /damaged and cannot be decoded/],
  ])('%s', (raw, reason) => {
    const error = imageErrorToAppError(new Error(raw));
    expect(error.message).toMatch(reason);
    expect(error.status).toBeGreaterThanOrEqual(400);
    expect(error.status).toBeLessThan(500);
  });
});
