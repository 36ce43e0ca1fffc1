import { describe, expect, it } from 'vitest';
import { withTargetDuration } from './package-ladder.js';

const playlist = (target: number, durations: number[]) =>
  [
    '#EXTM3U',
    '#EXT-X-VERSION:7',
    `#EXT-X-TARGETDURATION:${target}`,
    '#EXT-X-MAP:URI="init.mp4"',
    ...durations.flatMap((d, i) => [`#EXTINF:${d.toFixed(6)},`, `seg-${i}.m4s`]),
    '#EXT-X-ENDLIST',
    '',
  ].join('\n');

describe('withTargetDuration', () => {
  it('raises the 0 that ffmpeg 5.1 writes for a one-frame video to 1', () => {
    expect(withTargetDuration(playlist(0, [0.033333]))).toBe(playlist(1, [0.033333]));
  });

  it('raises a target below a rounded EXTINF to it', () => {
    expect(withTargetDuration(playlist(2, [2.4, 2.6]))).toBe(playlist(3, [2.4, 2.6]));
  });

  it('leaves a target that is already enough alone', () => {
    const text = playlist(6, [6, 6, 2.5]);
    expect(withTargetDuration(text)).toBe(text);
  });
});
