import { probeRefusal } from '../../media/ffprobe-parse.js';
import { probeVideo } from '../../media/video-probe.js';
import type { StepDefinition } from '../step.js';
import type { ProbeOutput } from './outputs.js';

const PROBE_TIMEOUT_MS = 60_000;

/**
 * ffprobe: container, streams, displayed size, frame rate, HDR, audio layout. Refuses what cannot
 * be processed (nothing decodable, not media at all, longer than the project allows) for good.
 */
export const probeStep: StepDefinition = {
  name: 'probe',
  async run(ctx): Promise<ProbeOutput> {
    const probe = await probeVideo(await ctx.sourcePath(), {
      timeoutMs: PROBE_TIMEOUT_MS,
      signal: ctx.signal,
    });
    const refusal = probeRefusal(probe, { maxDurationSec: ctx.limits.maxDurationSec });
    if (refusal) throw refusal;
    return { probe };
  },
};
