import { probeImage } from '../../media/image.js';
import type { StepDefinition } from '../step.js';

/**
 * Reads the header: format, displayed size, pages/frames, alpha, colour space, bit depth, EXIF
 * orientation and the curated EXIF (GPS only when the project allows it). Refuses decompression
 * bombs before anything decodes a pixel. Output: {@link import('../../media/image.js').ImageProbe}.
 */
export const probeStep: StepDefinition = {
  name: 'probe',
  async run(ctx) {
    const probe = await probeImage(await ctx.sourcePath(), ctx.limits, {
      exposeGps: ctx.settings.exposeGps,
    });
    return { ...probe };
  },
};
