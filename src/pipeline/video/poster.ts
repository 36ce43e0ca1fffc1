import { renderPoster } from '../../media/poster.js';
import type { StepDefinition, StepOutput } from '../step.js';
import { type PosterOutput, probeOutput } from './outputs.js';
import { STREAM_PREFIX } from './stream-files.js';

const POSTER_TIMEOUT_MS = 10 * 60_000;

/**
 * A representative frame that is not black or blank, as JPEG and WebP, and its BlurHash for the
 * asset record. Audio has none.
 */
export const posterStep: StepDefinition = {
  name: 'poster',
  async run(ctx): Promise<PosterOutput | StepOutput> {
    const { probe } = probeOutput(ctx.outputs);
    if (probe.video === null) return { skipped: 'no video stream' };
    const poster = await renderPoster(await ctx.sourcePath(), {
      durationSec: probe.durationSec ?? 0,
      scratchDir: ctx.scratchDir,
      streamIndex: probe.video.index,
      blurhashComponents: ctx.settings.blurhashComponents,
      timeoutMs: POSTER_TIMEOUT_MS,
      signal: ctx.signal,
    });
    for (const [name, body, contentType] of [
      ['poster.jpg', poster.jpeg, 'image/jpeg'],
      ['poster.webp', poster.webp, 'image/webp'],
    ] as const) {
      await ctx.writeOutput({
        name: `${STREAM_PREFIX}${name}`,
        body,
        contentType,
        width: poster.width,
        height: poster.height,
      });
    }
    return {
      timeSec: poster.timeSec,
      width: poster.width,
      height: poster.height,
      blurhash: poster.blurhash,
      allDark: poster.allDark,
    };
  },
};
