import type { LadderPlan } from '../../domain/ladder.js';
import type { VideoProbe } from '../../media/ffprobe-parse.js';
import type { PackagedVariant } from '../../media/package-ladder.js';
import type { StepOutput } from '../step.js';

// What the video steps record on the run and read back from each other. Step outputs come back
// from the catalog as JSON; these readers are the one place that trusts their shape, because only
// the steps in this folder write them.

export interface ProbeOutput extends StepOutput {
  probe: VideoProbe;
}

export interface PlanOutput extends StepOutput {
  plan: LadderPlan;
  /** How the complexity was measured (automated ABR), or null for the fixed ladder. */
  complexity: { complexityBpp: number; sampledSec: number; samples: number } | null;
}

export interface EncodeOutput extends StepOutput {
  mode: 'one-piece' | 'chunked';
  chunks: number;
  variants: PackagedVariant[];
  /** Files stored under `stream/`. */
  files: number;
  bytes: number;
  /** `stream/download.mp4` was written. */
  download: boolean;
  /** The MPD was written (every ladder has one). */
  dash: boolean;
  /** Chunk files, deleted once the run is published. */
  temporaryKeys: string[];
}

export interface PosterOutput extends StepOutput {
  timeSec: number;
  width: number;
  height: number;
  blurhash: string;
  allDark: boolean;
}

export interface StoryboardOutput extends StepOutput {
  intervalSec: number;
  tiles: number;
  sheets: number;
  decode: string;
}

/** A chunk job's record: the files it stored, one per rung. */
export interface ChunkOutput extends StepOutput {
  files: { rungId: string; name: string; key: string; size: number }[];
}

export function probeOutput(outputs: Readonly<Record<string, StepOutput>>): ProbeOutput {
  const out = outputs.probe as ProbeOutput | undefined;
  if (!out?.probe) throw new Error('the probe step has no recorded output');
  return out;
}

export function planOutput(outputs: Readonly<Record<string, StepOutput>>): PlanOutput {
  const out = outputs.plan as PlanOutput | undefined;
  if (!out?.plan) throw new Error('the plan step has no recorded output');
  return out;
}

/** Outputs of a step that was skipped for this kind of source (`{ skipped: reason }`) read as undefined. */
export function optionalOutput<T extends StepOutput>(
  outputs: Readonly<Record<string, StepOutput>>,
  step: string,
): T | undefined {
  const out = outputs[step];
  if (!out || typeof out.skipped === 'string') return undefined;
  return out as T;
}
