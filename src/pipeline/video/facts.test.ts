import { describe, expect, it } from 'vitest';
import { DEFAULT_LADDER_SETTINGS, planLadder } from '../../domain/ladder.js';
import type { VideoProbe } from '../../media/ffprobe-parse.js';
import { ladderSourceFromProbe } from '../../media/ladder-source.js';
import { stepSpan } from '../step.js';
import { chunksFor, sourceFrameRate } from './encode.js';
import { videoFacts } from './facts.js';
import { videoPipeline } from './index.js';

function probe(overrides: Partial<VideoProbe['video'] & object> = {}, durationSec = 10): VideoProbe {
  const video = {
    index: 0,
    codec: 'h264',
    profile: 'High',
    pixelFormat: 'yuv420p',
    bitDepth: 8,
    width: 1920,
    height: 1080,
    displayWidth: 1920,
    displayHeight: 1080,
    rotation: 0 as const,
    avgFrameRate: 30,
    baseFrameRate: 30,
    frameRate: 30,
    variableFrameRate: false,
    frameCount: 300,
    interlaced: false,
    color: { primaries: null, transfer: null, matrix: null, range: null },
    hdr: null,
    wideGamut: false,
    bitRate: 5_000_000,
    ...overrides,
  };
  return {
    formatName: 'mov,mp4,m4a,3gp,3g2,mj2',
    durationSec,
    bitRate: 5_200_000,
    video,
    audio: {
      index: 1,
      codec: 'aac',
      profile: 'LC',
      channels: 6,
      channelLayout: '5.1',
      sampleRate: 48000,
      bitRate: 192000,
    },
    decodable: { video: true, audio: true },
    undecodable: [],
  };
}

describe('video facts for the asset record', () => {
  it('shows the displayed size, the stream paths and the ladder with measured bandwidths', () => {
    const p = probe({ width: 1920, height: 1080, displayWidth: 1080, displayHeight: 1920, rotation: 90 });
    const plan = planLadder(ladderSourceFromProbe(p), DEFAULT_LADDER_SETTINGS);
    const top = plan.rungs[0]!;
    const facts = videoFacts({
      probe: { probe: p },
      plan: { plan, complexity: null },
      encode: {
        mode: 'one-piece',
        chunks: 1,
        variants: [
          {
            id: top.id,
            width: top.widthPx,
            height: top.heightPx,
            bandwidth: 4_000_000,
            averageBandwidth: 3_000_000,
            codecs: 'avc1.640028,mp4a.40.2',
          },
        ],
        files: 40,
        bytes: 1,
        download: true,
        dash: true,
      },
      poster: {
        timeSec: 1,
        width: 1080,
        height: 1920,
        blurhash: 'LEHV6nWB2yk8pyo0adR*.7kCMdnj',
        allDark: false,
      },
      storyboard: { intervalSec: 1, tiles: 10, sheets: 2, decode: 'keyframes' },
    });
    expect(facts).toMatchObject({
      width: 1080,
      height: 1920,
      durationSec: 10,
      blurhash: 'LEHV6nWB2yk8pyo0adR*.7kCMdnj',
    });
    expect(facts.extra?.stream).toEqual({
      hls: 'master.m3u8',
      dash: 'manifest.mpd',
      poster: { jpeg: 'poster.jpg', webp: 'poster.webp' },
      storyboard: { vtt: 'storyboard.vtt', sheets: ['storyboard-0.jpg', 'storyboard-1.jpg'] },
      download: 'download.mp4',
    });
    const ladder = facts.extra?.ladder as {
      rungs: { id: string; width: number; height: number; bandwidth: number | null }[];
      audio: unknown;
    };
    expect(ladder.rungs[0]).toMatchObject({ id: top.id, width: 1080, height: 1920, bandwidth: 4_000_000 });
    expect(ladder.rungs.slice(1).every((r) => r.bandwidth === null)).toBe(true);
    expect(ladder.audio).toEqual({ codec: 'aac', channels: 2, bitrateBps: 128_000, downmixFromChannels: 6 });
  });

  it('leaves poster and storyboard out for audio, whose steps were skipped', () => {
    const p: VideoProbe = { ...probe(), video: null, formatName: 'wav' };
    const plan = planLadder(ladderSourceFromProbe(p), DEFAULT_LADDER_SETTINGS);
    const facts = videoFacts({
      probe: { probe: p },
      plan: { plan, complexity: null },
      encode: { mode: 'one-piece', chunks: 1, variants: [], files: 5, bytes: 1, download: false, dash: true },
      poster: { skipped: 'no video stream' },
      storyboard: { skipped: 'no video stream' },
    });
    expect(facts).toMatchObject({ width: null, height: null, blurhash: null, format: 'wav' });
    expect(facts.extra?.stream).toMatchObject({ poster: null, storyboard: null, download: null });
  });
});

describe('encode step decisions', () => {
  const plan = planLadder(ladderSourceFromProbe(probe()), {
    ...DEFAULT_LADDER_SETTINGS,
    segmentDurationSec: 2,
  });

  it('encodes a source no longer than the chunk length in one piece', () => {
    expect(chunksFor(plan, probe({}, 60), 60)).toHaveLength(1);
  });

  it('cuts a long source into chunks on segment boundaries', () => {
    const chunks = chunksFor(plan, probe({}, 9), 3);
    expect(chunks.map((c) => [c.startSec, c.durationSec])).toEqual([
      [0, 2],
      [2, 2],
      [4, 2],
      [6, 3],
    ]);
  });

  it('never chunks an audio-only plan', () => {
    const audio: VideoProbe = { ...probe({}, 600), video: null };
    const audioPlan = planLadder(ladderSourceFromProbe(audio), DEFAULT_LADDER_SETTINGS);
    expect(chunksFor(audioPlan, audio, 3)).toHaveLength(1);
  });

  it('gives the encoder the constant rate, and null for a variable one', () => {
    expect(sourceFrameRate(probe())).toBe(30);
    expect(sourceFrameRate(probe({ variableFrameRate: true, frameRate: 29.3 }))).toBeNull();
  });
});

describe('progress spans', () => {
  it('gives the encode step most of the run and ends publish at 100', () => {
    const encode = videoPipeline.steps.findIndex((s) => s.name === 'encode');
    const span = stepSpan(videoPipeline, encode);
    expect(span.end - span.start).toBeGreaterThan(70);
    expect(stepSpan(videoPipeline, 0).start).toBe(0);
    expect(stepSpan(videoPipeline, videoPipeline.steps.length).end).toBeCloseTo(100);
  });
});
