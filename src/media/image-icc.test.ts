import { describe, expect, it } from 'vitest';
import { iccDescription } from './image-icc.js';

/** A minimal ICC profile: 128-byte header with the `acsp` signature, one tag (`desc`) with `body`. */
function profile(body: Buffer): Buffer {
  const header = Buffer.alloc(128);
  header.write('acsp', 36, 'latin1');
  const table = Buffer.alloc(4 + 12);
  table.writeUInt32BE(1, 0);
  table.write('desc', 4, 'latin1');
  table.writeUInt32BE(128 + table.length, 8);
  table.writeUInt32BE(body.length, 12);
  const bytes = Buffer.concat([header, table, body]);
  bytes.writeUInt32BE(bytes.length, 0);
  return bytes;
}

/** v2 textDescriptionType: 'desc', reserved, ASCII count (with NUL), ASCII. */
function v2(text: string): Buffer {
  const ascii = Buffer.from(`${text}\0`, 'latin1');
  const head = Buffer.alloc(12);
  head.write('desc', 0, 'latin1');
  head.writeUInt32BE(ascii.length, 8);
  return Buffer.concat([head, ascii, Buffer.alloc(79)]);
}

/** v4 multiLocalizedUnicodeType with one record, UTF-16BE. */
function v4(text: string): Buffer {
  const utf16be = Buffer.from(text, 'utf16le').swap16();
  const head = Buffer.alloc(28);
  head.write('mluc', 0, 'latin1');
  head.writeUInt32BE(1, 8);
  head.writeUInt32BE(12, 12);
  head.write('enUS', 16, 'latin1');
  head.writeUInt32BE(utf16be.length, 20);
  head.writeUInt32BE(28, 24);
  return Buffer.concat([head, utf16be]);
}

describe('iccDescription', () => {
  it.each<[string, Buffer | undefined, string | null]>([
    ['v2 desc', profile(v2('sRGB IEC61966-2.1')), 'sRGB IEC61966-2.1'],
    ['v4 mluc', profile(v4('Display P3')), 'Display P3'],
    ['no profile', undefined, null],
    ['too short', Buffer.alloc(40), null],
    ['not an ICC profile', Buffer.alloc(200), null],
    ['a tag pointing past the end', profile(v2('x')).subarray(0, 150), null],
    ['unknown tag type', profile(Buffer.from('XYZ \0\0\0\0\0\0\0\0', 'latin1')), null],
  ])('%s', (_name, bytes, expected) => {
    expect(iccDescription(bytes)).toBe(expected);
  });
});
