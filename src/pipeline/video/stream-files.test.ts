import { describe, expect, it } from 'vitest';
import { streamContentType } from './stream-files.js';

describe('streamContentType', () => {
  it.each([
    ['master.m3u8', 'application/vnd.apple.mpegurl'],
    ['h264-720p/index.m3u8', 'application/vnd.apple.mpegurl'],
    ['manifest.mpd', 'application/dash+xml'],
    ['h264-720p/seg-00000.m4s', 'video/iso.segment'],
    ['audio/seg-00003.m4s', 'audio/iso.segment'],
    ['h264-720p/init_h264-720p.mp4', 'video/mp4'],
    ['audio/init_audio.mp4', 'audio/mp4'],
    ['download.mp4', 'video/mp4'],
    ['storyboard.vtt', 'text/vtt'],
    ['storyboard-0.jpg', 'image/jpeg'],
    ['poster.webp', 'image/webp'],
    ['notes.txt', 'application/octet-stream'],
  ])('%s is %s', (path, type) => {
    expect(streamContentType(path)).toBe(type);
  });
});
