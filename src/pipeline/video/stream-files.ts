/** Renditions of a version's stream package are named `stream/<path inside the package>`. */
export const STREAM_PREFIX = 'stream/';

const TYPES: ReadonlyArray<[RegExp, string]> = [
  [/\.m3u8$/, 'application/vnd.apple.mpegurl'],
  [/\.mpd$/, 'application/dash+xml'],
  [/^audio\/.*\.m4s$/, 'audio/iso.segment'],
  [/\.m4s$/, 'video/iso.segment'],
  [/^audio\/.*\.mp4$/, 'audio/mp4'],
  [/\.mp4$/, 'video/mp4'],
  [/\.vtt$/, 'text/vtt'],
  [/\.jpe?g$/, 'image/jpeg'],
  [/\.webp$/, 'image/webp'],
];

/** The content type of a file of the package, by its path inside the package. */
export function streamContentType(path: string): string {
  return TYPES.find(([pattern]) => pattern.test(path))?.[1] ?? 'application/octet-stream';
}
