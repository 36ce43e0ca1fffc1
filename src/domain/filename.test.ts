import { describe, expect, it } from 'vitest';
import { sanitizeFilename } from './filename.js';

describe('sanitizeFilename', () => {
  it.each([
    ['photo.jpg', 'photo.jpg'],
    ['../../etc/passwd', 'passwd'],
    ['C:\\Users\\me\\IMG_0001.JPG', 'IMG_0001.JPG'],
    ['dir/sub/', 'upload'],
    ['..', 'upload'],
    ['', 'upload'],
    [undefined, 'upload'],
    ['tab\there.png', 'tabhere.png'],
    ['evil\u202egpj.exe', 'evilgpj.exe'],
    ['  spaced.gif  ', 'spaced.gif'],
    ['Cafe\u0301.jpg', 'Café.jpg'],
  ])('%j -> %j', (raw, expected) => {
    expect(sanitizeFilename(raw)).toBe(expected);
  });

  it('caps length at 255 characters and keeps the extension', () => {
    const name = sanitizeFilename(`${'a'.repeat(10_000)}.jpeg`);
    expect(Array.from(name)).toHaveLength(255);
    expect(name.endsWith('.jpeg')).toBe(true);
  });

  it('uses the given fallback', () => {
    expect(sanitizeFilename('/', 'upload.png')).toBe('upload.png');
  });
});
