const MAX_FILENAME_CHARS = 255;
// biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;
// Bidi overrides can disguise "gpj.exe" as "exe.jpg" in a listing.
const BIDI_OVERRIDES = /[\u202a-\u202e\u2066-\u2069]/g;

/**
 * The display name kept for an upload. Only the last path component survives (a client may send
 * `C:\Users\me\photo.jpg` or `../../etc/passwd`), control and bidi-override characters are removed,
 * and the result is capped at 255 characters. Never used to build a storage key.
 */
export function sanitizeFilename(raw: string | undefined | null, fallback = 'upload'): string {
  if (!raw) return fallback;
  const last = raw.split(/[\\/]/).pop() ?? '';
  let name = last.normalize('NFC').replace(CONTROL, '').replace(BIDI_OVERRIDES, '').trim();
  if (name === '.' || name === '..') name = '';
  if (name.length > MAX_FILENAME_CHARS) {
    const dot = name.lastIndexOf('.');
    const ext = dot > 0 && name.length - dot <= 16 ? name.slice(dot) : '';
    name = [...name.slice(0, MAX_FILENAME_CHARS - ext.length)].join('') + ext;
    name = Array.from(name).slice(0, MAX_FILENAME_CHARS).join('');
  }
  return name === '' ? fallback : name;
}
