import type { LadderSource } from '../domain/ladder.js';
import type { VideoProbe } from './ffprobe-parse.js';

/**
 * What the planner needs from a probe: the displayed size (after rotation), frame rate, dynamic
 * range and bit depth of the chosen video stream, and the chosen audio stream's channels. Missing
 * facts get the common case (SDR, 8 bits).
 */
export function ladderSourceFromProbe(probe: VideoProbe): LadderSource {
  const v = probe.video;
  return {
    durationSec: probe.durationSec,
    video:
      v === null
        ? null
        : {
            widthPx: v.displayWidth,
            heightPx: v.displayHeight,
            frameRateFps: v.frameRate,
            variableFrameRate: v.variableFrameRate,
            frameCount: v.frameCount,
            dynamicRange: v.hdr ?? 'sdr',
            bitDepth: v.bitDepth ?? 8,
          },
    audio: probe.audio === null ? null : { channels: probe.audio.channels },
  };
}
