import type { AssetFacts } from '../../domain/asset.js';
import type { StepOutput } from '../step.js';
import {
  type EncodeOutput,
  optionalOutput,
  type PosterOutput,
  planOutput,
  probeOutput,
  type StoryboardOutput,
} from './outputs.js';

/** The ladder as the asset record shows it: what was chosen, at what rates, and why. */
export interface LadderSummary {
  kind: string;
  bitrateMode: string | null;
  complexityBpp: number | null;
  segmentDurationSec: number;
  rungs: {
    id: string;
    codec: string;
    width: number;
    height: number;
    frameRate: number;
    crf: number;
    maxrateBps: number;
    /** BANDWIDTH and AVERAGE-BANDWIDTH of the variant as measured and written to the master. */
    bandwidth: number | null;
    averageBandwidth: number | null;
    codecs: string | null;
  }[];
  audio: { codec: string; channels: number; bitrateBps: number; downmixFromChannels: number | null } | null;
  reasons: string[];
}

/** Paths inside the version's stream package (`stream/` renditions) the record links to. */
export interface StreamFacts {
  hls: string;
  dash: string | null;
  poster: { jpeg: string; webp: string } | null;
  storyboard: { vtt: string; sheets: string[] } | null;
  download: string | null;
}

/** What the video steps learned, as facts on the asset record. */
export function videoFacts(outputs: Readonly<Record<string, StepOutput>>): AssetFacts {
  const { probe } = probeOutput(outputs);
  const { plan } = planOutput(outputs);
  const encode = outputs.encode as EncodeOutput | undefined;
  const poster = optionalOutput<PosterOutput>(outputs, 'poster');
  const storyboard = optionalOutput<StoryboardOutput>(outputs, 'storyboard');
  const variants = new Map((encode?.variants ?? []).map((v) => [v.id, v]));
  const ladder: LadderSummary = {
    kind: plan.kind,
    bitrateMode: plan.bitrateMode,
    complexityBpp: plan.complexityBpp,
    segmentDurationSec: plan.segmentDurationSec,
    rungs: plan.rungs.map((rung) => {
      const variant = variants.get(rung.id);
      return {
        id: rung.id,
        codec: rung.codec,
        width: variant?.width ?? rung.widthPx,
        height: variant?.height ?? rung.heightPx,
        frameRate: rung.frameRateFps,
        crf: rung.crf,
        maxrateBps: rung.maxrateBps,
        bandwidth: variant?.bandwidth ?? null,
        averageBandwidth: variant?.averageBandwidth ?? null,
        codecs: variant?.codecs ?? null,
      };
    }),
    audio:
      plan.audio === null
        ? null
        : {
            codec: plan.audio.codec,
            channels: plan.audio.channels,
            bitrateBps: plan.audio.bitrateBps,
            downmixFromChannels: plan.audio.downmixFromChannels,
          },
    reasons: plan.reasons,
  };
  const stream: StreamFacts = {
    hls: 'master.m3u8',
    dash: encode?.dash ? 'manifest.mpd' : null,
    poster: poster ? { jpeg: 'poster.jpg', webp: 'poster.webp' } : null,
    storyboard: storyboard
      ? {
          vtt: 'storyboard.vtt',
          sheets: Array.from({ length: storyboard.sheets }, (_, i) => `storyboard-${i}.jpg`),
        }
      : null,
    download: encode?.download ? 'download.mp4' : null,
  };
  const video = probe.video;
  return {
    width: video?.displayWidth ?? null,
    height: video?.displayHeight ?? null,
    format: probe.formatName,
    durationSec: probe.durationSec,
    blurhash: poster?.blurhash ?? null,
    extra: {
      videoCodec: video?.codec ?? null,
      audioCodec: probe.audio?.codec ?? null,
      frameRate: video?.frameRate ?? null,
      variableFrameRate: video?.variableFrameRate ?? null,
      hdr: video?.hdr ?? null,
      rotation: video?.rotation ?? null,
      audioChannels: probe.audio?.channels ?? null,
      stream,
      ladder,
    },
  };
}
