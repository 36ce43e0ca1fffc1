// Reads the human name out of an ICC colour profile (ICC.1:2010 / v2 and v4), so the probe can
// tell a Display P3 photo from an sRGB one. Pure byte parsing, no sharp: the profile bytes come from
// the header read.

const HEADER_BYTES = 128;
const TAG_ENTRY_BYTES = 12;
const MAX_TAGS = 256;

/** The profile's description (`desc` tag), e.g. "Display P3" or "sRGB IEC61966-2.1"; `null` when unreadable. */
export function iccDescription(icc: Uint8Array | undefined): string | null {
  if (!icc || icc.length < HEADER_BYTES + 4) return null;
  const bytes = Buffer.from(icc.buffer, icc.byteOffset, icc.byteLength);
  if (bytes.toString('latin1', 36, 40) !== 'acsp') return null;
  const count = bytes.readUInt32BE(HEADER_BYTES);
  for (let i = 0; i < Math.min(count, MAX_TAGS); i++) {
    const entry = HEADER_BYTES + 4 + i * TAG_ENTRY_BYTES;
    if (entry + TAG_ENTRY_BYTES > bytes.length) return null;
    if (bytes.toString('latin1', entry, entry + 4) !== 'desc') continue;
    const offset = bytes.readUInt32BE(entry + 4);
    const size = bytes.readUInt32BE(entry + 8);
    if (offset + size > bytes.length || size < 12) return null;
    return readText(bytes.subarray(offset, offset + size));
  }
  return null;
}

/** A `desc` tag body: v2 `textDescriptionType` (ASCII) or v4 `multiLocalizedUnicodeType` (UTF-16BE). */
function readText(tag: Buffer): string | null {
  const type = tag.toString('latin1', 0, 4);
  if (type === 'desc') {
    const length = tag.readUInt32BE(8);
    if (12 + length > tag.length) return null;
    return clean(tag.toString('latin1', 12, 12 + length));
  }
  if (type === 'mluc') {
    const records = tag.readUInt32BE(8);
    const recordSize = tag.readUInt32BE(12);
    if (records < 1 || recordSize < 12 || 16 + recordSize > tag.length) return null;
    // The first record is enough: profile makers put English (or their only language) first.
    const length = tag.readUInt32BE(16 + 4);
    const offset = tag.readUInt32BE(16 + 8);
    if (offset + length > tag.length) return null;
    // swap16 needs an even length; a stray odd byte is dropped.
    const utf16be = Buffer.from(tag.subarray(offset, offset + length - (length % 2)));
    return clean(utf16be.swap16().toString('utf16le'));
  }
  return null;
}

function clean(text: string): string | null {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: ICC strings are NUL-terminated/padded
  const trimmed = text.replace(/[\u0000-\u001f]+/g, ' ').trim();
  return trimmed === '' ? null : trimmed.slice(0, 100);
}
