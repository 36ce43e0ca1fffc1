import { planStoryboard } from '../../domain/storyboard.js';
import { renderStoryboard } from '../../media/storyboard-render.js';
import type { StepDefinition, StepOutput } from '../step.js';
import { probeOutput, type StoryboardOutput } from './outputs.js';
import { STREAM_PREFIX } from './stream-files.js';

const STORYBOARD_TIMEOUT_MS = 30 * 60_000;

/**
 * Sprite sheets of small frames every N seconds (N from the duration) and a WebVTT track whose cues
 * point into them with `#xywh=`, for scrubbing previews. The VTT names the sheets relative to
 * itself, so it works under any delivery prefix.
 */
export const storyboardStep: StepDefinition = {
  name: 'storyboard',
  timeoutMs: (outputs) => STORYBOARD_TIMEOUT_MS + 1000 * (probeOutput(outputs).probe.durationSec ?? 0),
  async run(ctx): Promise<StoryboardOutput | StepOutput> {
    const { probe } = probeOutput(ctx.outputs);
    const video = probe.video;
    const durationSec = probe.durationSec ?? 0;
    if (video === null) return { skipped: 'no video stream' };
    if (!(durationSec > 0)) return { skipped: 'the duration is unknown' };
    const plan = planStoryboard({ durationSec, width: video.displayWidth, height: video.displayHeight });
    const rendered = await renderStoryboard(await ctx.sourcePath(), plan, {
      scratchDir: ctx.scratchDir,
      streamIndex: video.index,
      sheetUrl: (i) => `storyboard-${i}.jpg`,
      timeoutMs: STORYBOARD_TIMEOUT_MS,
      signal: ctx.signal,
    });
    for (const sheet of rendered.sheets) {
      await ctx.writeOutput({
        name: `${STREAM_PREFIX}storyboard-${sheet.index}.jpg`,
        body: sheet.jpeg,
        contentType: 'image/jpeg',
        width: sheet.width,
        height: sheet.height,
      });
    }
    await ctx.writeOutput({
      name: `${STREAM_PREFIX}storyboard.vtt`,
      body: Buffer.from(rendered.vtt),
      contentType: 'text/vtt',
    });
    return {
      intervalSec: plan.intervalSec,
      tiles: plan.tileCount,
      sheets: rendered.sheets.length,
      decode: rendered.decode,
    };
  },
};
