import { probeImage } from '../../media/image.js';
import type { StepDefinition } from '../step.js';

/** Reads the header: format, displayed size, frames. Refuses decompression bombs before decoding. */
export const probeStep: StepDefinition = {
  name: 'probe',
  async run(ctx) {
    const probe = await probeImage(await ctx.sourcePath(), ctx.limits);
    return { ...probe };
  },
};
