import { AppError } from '../../errors.js';
import { probeMedia } from '../../media/ffmpeg.js';
import type { PipelineDefinition, StepDefinition } from '../step.js';

const PROBE_TIMEOUT_MS = 60_000;

function num(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

/** ffprobe: container, duration and streams. Refuses files with nothing decodable. */
export const mediaProbeStep: StepDefinition = {
  name: 'probe',
  async run(ctx) {
    const probe = await probeMedia(await ctx.sourcePath(), {
      timeoutMs: PROBE_TIMEOUT_MS,
      signal: ctx.signal,
    });
    if (!probe.video && !probe.audio) {
      throw new AppError('MEDIA_INVALID', 'The file has no video or audio stream that can be decoded.');
    }
    const max = ctx.limits.maxDurationSec;
    if (max !== null && probe.durationSec !== null && probe.durationSec > max) {
      throw new AppError(
        'DURATION_TOO_LONG',
        `The file lasts ${Math.round(probe.durationSec)} s; project "${ctx.limits.projectId}" accepts at most ${max} s (limit maxVideoDurationSec).`,
      );
    }
    return {
      durationSec: probe.durationSec,
      formatName: probe.formatName,
      width: probe.video?.width ?? null,
      height: probe.video?.height ?? null,
      videoCodec: probe.video?.codec ?? null,
      audioCodec: probe.audio?.codec ?? null,
      audioChannels: probe.audio?.channels ?? null,
    };
  },
};

function factsFromProbe(outputs: Readonly<Record<string, Record<string, unknown>>>) {
  const probe = outputs.probe ?? {};
  return {
    width: num(probe.width),
    height: num(probe.height),
    format: typeof probe.formatName === 'string' ? probe.formatName : null,
    durationSec: num(probe.durationSec),
    extra: { videoCodec: probe.videoCodec ?? null, audioCodec: probe.audioCodec ?? null },
  };
}

// Video and audio are probed and catalogued; the ladder, packaging, poster and storyboard steps
// join these lists with the video-on-demand work.
export const videoPipeline: PipelineDefinition = {
  kind: 'video',
  steps: [mediaProbeStep],
  facts: factsFromProbe,
};
export const audioPipeline: PipelineDefinition = {
  kind: 'audio',
  steps: [mediaProbeStep],
  facts: factsFromProbe,
};
