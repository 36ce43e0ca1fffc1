import { planLadder } from '../../domain/ladder.js';
import { measureComplexity } from '../../media/complexity-probe.js';
import { ladderSourceFromProbe } from '../../media/ladder-source.js';
import type { StepDefinition } from '../step.js';
import { type PlanOutput, probeOutput } from './outputs.js';

const COMPLEXITY_TIMEOUT_MS = 10 * 60_000;

/**
 * Plans the ladder. With automated ABR (the default) a few sampled seconds are encoded at constant
 * quality first, so a screen recording gets a cheaper ladder than a football match; the plan's
 * `reasons` (recorded on the run) say which rungs were kept or dropped and why.
 */
export const planStep: StepDefinition = {
  name: 'plan',
  async run(ctx): Promise<PlanOutput> {
    const { probe } = probeOutput(ctx.outputs);
    const source = ladderSourceFromProbe(probe);
    const settings = ctx.settings.video;
    let complexity: PlanOutput['complexity'] = null;
    if (settings.bitrateMode === 'automated' && source.video !== null && !isStill(source)) {
      // The rungs' own preset and keyframe interval: both change how many bits a picture costs.
      complexity = await measureComplexity(await ctx.sourcePath(), probe, {
        timeoutMs: COMPLEXITY_TIMEOUT_MS,
        signal: ctx.signal,
        preset: settings.preset,
        segmentDurationSec: settings.ladder.segmentDurationSec,
      });
      if (source.video) source.video.complexityBpp = complexity.complexityBpp;
    }
    const plan = planLadder(source, settings.ladder);
    ctx.logger.info(
      { kind: plan.kind, rungs: plan.rungs.map((r) => r.id), bitrateMode: plan.bitrateMode },
      'ladder planned',
    );
    return { plan, complexity };
  },
};

/** A one-frame video has nothing to measure: its single frame is the whole stream. */
function isStill(source: ReturnType<typeof ladderSourceFromProbe>): boolean {
  const frames = source.video?.frameCount;
  return frames !== undefined && frames !== null && frames <= 1;
}
