import { describe, expect, it } from 'vitest';
import {
  AUDIO_BITRATE_BPS,
  complexityProbeFor,
  DEFAULT_LADDER_SETTINGS,
  type LadderPlan,
  type LadderSettings,
  type LadderSource,
  type LadderSourceVideo,
  planLadder,
  validateLadderSettings,
} from './ladder.js';

function video(overrides: Partial<LadderSourceVideo> = {}): LadderSourceVideo {
  return {
    widthPx: 1920,
    heightPx: 1080,
    frameRateFps: 30,
    variableFrameRate: false,
    dynamicRange: 'sdr',
    bitDepth: 8,
    ...overrides,
  };
}

function source(overrides: Partial<LadderSourceVideo> = {}, channels: number | null = 2): LadderSource {
  return { durationSec: 60, video: video(overrides), audio: channels === null ? null : { channels } };
}

function settings(overrides: Partial<LadderSettings> = {}): LadderSettings {
  return { ...DEFAULT_LADDER_SETTINGS, ...overrides };
}

/** `1280x720@30` per H.264 rung, largest first. */
function shape(plan: LadderPlan): string[] {
  return plan.rungs
    .filter((r) => r.codec === 'h264')
    .map((r) => `${r.widthPx}x${r.heightPx}@${r.frameRateFps}`);
}

function totalCaps(plan: LadderPlan): number {
  return plan.rungs.reduce((sum, r) => sum + r.maxrateBps, 0);
}

describe('planLadder: sizes', () => {
  it.each<[string, Partial<LadderSourceVideo>, Partial<LadderSettings>, string[]]>([
    [
      '1080p60 landscape',
      { frameRateFps: 60 },
      {},
      ['1920x1080@60', '1280x720@60', '854x480@30', '640x360@30'],
    ],
    [
      '4K HDR 10-bit, 1440p/2160p off: scaled down to 1080p',
      { widthPx: 3840, heightPx: 2160, frameRateFps: 24, dynamicRange: 'pq', bitDepth: 10 },
      {},
      ['1920x1080@24', '1280x720@24', '854x480@24', '640x360@24'],
    ],
    [
      '4K with 1440p and 2160p enabled',
      { widthPx: 3840, heightPx: 2160, frameRateFps: 24 },
      { enable1440p: true, enable2160p: true },
      ['3840x2160@24', '2560x1440@24', '1920x1080@24', '1280x720@24', '854x480@24', '640x360@24'],
    ],
    [
      '1440p source with 1440p enabled but not 2160p',
      { widthPx: 2560, heightPx: 1440 },
      { enable1440p: true, enable2160p: true },
      ['2560x1440@30', '1920x1080@30', '1280x720@30', '854x480@30', '640x360@30'],
    ],
    [
      '1080x1920 portrait: laddered by its short side',
      { widthPx: 1080, heightPx: 1920 },
      {},
      ['1080x1920@30', '720x1280@30', '480x854@30', '360x640@30'],
    ],
    ['320x180: its own size is the one rung', { widthPx: 320, heightPx: 180 }, {}, ['320x180@30']],
    [
      '1366x768: own size on top, 720p too close to it',
      { widthPx: 1366, heightPx: 768 },
      {},
      ['1366x768@30', '854x480@30', '640x360@30'],
    ],
    [
      '1921x1081: rounded down to even, no 1-pixel upscale',
      { widthPx: 1921, heightPx: 1081 },
      {},
      ['1920x1080@30', '1280x720@30', '854x480@30', '640x360@30'],
    ],
    [
      '4:3 1440x1080',
      { widthPx: 1440, heightPx: 1080 },
      {},
      ['1440x1080@30', '960x720@30', '640x480@30', '480x360@30'],
    ],
    [
      'below 1080p, above 720p, portrait, odd: 801x1423',
      { widthPx: 801, heightPx: 1423 },
      {},
      ['800x1422@30', '480x854@30', '360x640@30'],
    ],
    [
      'exactly 480p at 60 fps: the top rung keeps 60 fps',
      { widthPx: 854, heightPx: 480, frameRateFps: 60 },
      {},
      ['854x480@60', '640x360@30'],
    ],
  ])('%s', (_label, v, s, expected) => {
    expect(shape(planLadder(source(v), settings(s)))).toEqual(expected);
  });

  it.each<[number, number]>([
    [1920, 1080],
    [1080, 1920],
    [1366, 768],
    [1921, 1081],
    [801, 1423],
    [3840, 1600],
    [321, 181],
    [1000, 1000],
  ])('%dx%d: every rung even, never larger than the source, aspect kept within 1%%', (w, h) => {
    const plan = planLadder(source({ widthPx: w, heightPx: h }));
    expect(plan.rungs.length).toBeGreaterThan(0);
    for (const r of plan.rungs) {
      expect(r.widthPx % 2, r.id).toBe(0);
      expect(r.heightPx % 2, r.id).toBe(0);
      expect(r.widthPx).toBeLessThanOrEqual(w);
      expect(r.heightPx).toBeLessThanOrEqual(h);
      expect(Math.abs(r.widthPx / r.heightPx / (w / h) - 1), r.id).toBeLessThan(0.01);
    }
  });

  it('names rungs by the short side and marks the source-size rung', () => {
    const plan = planLadder(source({ widthPx: 1366, heightPx: 768 }));
    expect(plan.rungs.map((r) => [r.id, r.fromSourceSize])).toEqual([
      ['h264-768p', true],
      ['h264-480p', false],
      ['h264-360p', false],
    ]);
    expect(plan.reasons).toContainEqual(
      expect.stringMatching(/^768p: the source's own size .* rather than scaled down to 720p/),
    );
    expect(plan.reasons).toContainEqual(expect.stringMatching(/^720p dropped: .* within 1.5x of 768p/));
    expect(plan.reasons).toContainEqual(
      expect.stringMatching(/^1080p dropped: larger than the source's short side \(768 px/),
    );
    expect(planLadder(source({ widthPx: 1080, heightPx: 1920 })).rungs[0]!.name).toBe('1080p');
  });
});

describe('planLadder: frame rate and keyframes', () => {
  it.each<[string, number | null, boolean, string, number, string, number]>([
    // label, source fps, variable, top rate, top GOP, 360p rate, 360p GOP (6 s segments)
    ['29.97', 30000 / 1001, false, '30000/1001', 180, '30000/1001', 180],
    ['23.976', 24000 / 1001, false, '24000/1001', 144, '24000/1001', 144],
    ['25', 25, false, '25/1', 150, '25/1', 150],
    ['50: low rungs halved', 50, false, '50/1', 300, '25/1', 150],
    ['59.94: low rungs halved', 60000 / 1001, false, '60000/1001', 360, '30000/1001', 180],
    ['60: low rungs halved', 60, false, '60/1', 360, '30/1', 180],
    ['120: every 2nd frame, then halved', 120, false, '60/1', 360, '30/1', 180],
    ['144: every 3rd frame', 144, false, '48/1', 288, '24/1', 144],
    ['VFR averaging 29.6: constant 30', 29.6, true, '30/1', 180, '30/1', 180],
    ['VFR averaging 59.7: constant 60, halved', 59.7, true, '60/1', 360, '30/1', 180],
    ['unknown: 30 assumed', null, false, '30/1', 180, '30/1', 180],
  ])('%s fps', (_label, fps, variable, topRate, topGop, lowRate, lowGop) => {
    const plan = planLadder(source({ frameRateFps: fps, variableFrameRate: variable }));
    const top = plan.rungs[0]!;
    const low = plan.rungs.find((r) => r.name === '360p')!;
    expect([top.frameRate, top.gopFrames, low.frameRate, low.gopFrames]).toEqual([
      topRate,
      topGop,
      lowRate,
      lowGop,
    ]);
  });

  it('keeps a GOP of exactly one segment at every rung, for other segment lengths too', () => {
    for (const segmentDurationSec of [2, 4, 6, 10]) {
      const plan = planLadder(source({ frameRateFps: 60 }), settings({ segmentDurationSec }));
      expect(plan.segmentDurationSec).toBe(segmentDurationSec);
      for (const r of plan.rungs) {
        // The keyframe interval in seconds is the segment length, whatever the rung's own rate.
        expect(r.gopFrames / r.frameRateFps, r.id).toBe(segmentDurationSec);
      }
    }
    // 29.97 fps: 4 s is 119.88 frames, 60 s is 1798.2; the forced keyframe lands on the next whole
    // frame, so -g must allow it (rounded up, not to the nearest) or the encoder would cut in early.
    expect(
      planLadder(source({ frameRateFps: 30000 / 1001 }), settings({ segmentDurationSec: 60 })).rungs[0]!
        .gopFrames,
    ).toBe(1799);
    expect(
      planLadder(source({ frameRateFps: 30000 / 1001 }), settings({ segmentDurationSec: 4 })).rungs[0]!
        .gopFrames,
    ).toBe(120);
  });

  it('says why the rate changed', () => {
    expect(planLadder(source({ frameRateFps: 29.6, variableFrameRate: true })).reasons).toContainEqual(
      expect.stringMatching(/^Variable frame rate \(average 29.6 fps\) made constant at 30 fps/),
    );
    expect(planLadder(source({ frameRateFps: 50 })).reasons).toContainEqual(
      expect.stringMatching(/^480p, 360p at 25 fps: half the source's 50 fps/),
    );
  });
});

describe('planLadder: fixed default ladder', () => {
  it('uses the documented caps with capped CRF and a 2-second buffer', () => {
    const plan = planLadder(source());
    expect(plan.bitrateMode).toBe('fixed');
    expect(plan.complexityBpp).toBeNull();
    expect(plan.rungs.map((r) => [r.name, r.maxrateBps, r.bufsizeBits, r.crf, r.expectedBitrateBps])).toEqual(
      [
        ['1080p', 5_000_000, 10_000_000, 23, null],
        ['720p', 3_000_000, 6_000_000, 23, null],
        ['480p', 1_500_000, 3_000_000, 23, null],
        ['360p', 800_000, 1_600_000, 23, null],
      ],
    );
    expect(
      plan.rungs.every((r) => r.codec === 'h264' && r.profile === 'high' && r.pixelFormat === 'yuv420p'),
    ).toBe(true);
  });

  it('gives 60 fps rungs more, but not twice as much', () => {
    const caps = planLadder(source({ frameRateFps: 60 })).rungs.map((r) => r.maxrateBps);
    // (60/30)^0.4 = 1.32 on the 60 fps rungs; 480p and 360p run at 30 fps, so they keep their caps.
    expect(caps).toEqual([6_598_000, 3_959_000, 1_500_000, 800_000]);
  });
});

describe('planLadder: automated ABR from measured complexity', () => {
  const slideshow = planLadder(source({ complexityBpp: 0.005 }));
  const talkingHead = planLadder(source({ complexityBpp: 0.03 }));
  const football = planLadder(source({ complexityBpp: 0.12, frameRateFps: 50 }));
  const fixed = planLadder(source());

  it('records the mode, the measurement and each rung expected bitrate', () => {
    expect(slideshow.bitrateMode).toBe('automated');
    expect(slideshow.complexityBpp).toBe(0.005);
    expect(slideshow.reasons).toContainEqual(
      expect.stringMatching(
        /^Caps from measured complexity 0.005 bits per pixel per frame \(probe 1280x720 at 30 fps, CRF 23/,
      ),
    );
    for (const r of [...slideshow.rungs, ...football.rungs]) {
      expect(r.expectedBitrateBps).not.toBeNull();
      // The cap sits 1.5x above the expected average (to the kb/s rounding).
      expect(Math.abs(r.maxrateBps - 1.5 * r.expectedBitrateBps!)).toBeLessThanOrEqual(1000);
    }
  });

  it('gives a slideshow fewer and cheaper rungs than the fixed ladder and a football match', () => {
    expect(shape(slideshow)).toEqual(['1920x1080@30']);
    expect(shape(talkingHead)).toEqual(['1920x1080@30', '1280x720@30', '854x480@30', '640x360@30']);
    expect(shape(football)).toEqual(['1920x1080@50', '1280x720@50', '854x480@25', '640x360@25']);
    expect(slideshow.reasons).toContainEqual(
      expect.stringMatching(/^720p \(335 kb\/s total\), 480p .* dropped: below the minimum/),
    );

    // Fewer bytes: the caps bound the bytes, and the expected bitrates predict them.
    expect(totalCaps(slideshow)).toBeLessThan(0.3 * totalCaps(talkingHead));
    expect(totalCaps(talkingHead)).toBeLessThan(totalCaps(fixed));
    expect(totalCaps(fixed)).toBeLessThan(totalCaps(football));
    const expected = (p: LadderPlan) => p.rungs.reduce((s, r) => s + r.expectedBitrateBps!, 0);
    expect(expected(slideshow)).toBeLessThan(expected(talkingHead));
    expect(expected(talkingHead)).toBeLessThan(expected(football));
  });

  it('keeps the fixed ladder shape for a film-like complexity', () => {
    // 0.072 bpp at 720p30 is 2 Mb/s expected, 3 Mb/s cap: the fixed 720p cap.
    const film = planLadder(source({ complexityBpp: 0.072 }));
    const fixedCaps = fixed.rungs.map((r) => r.maxrateBps);
    expect(film.rungs.map((r) => r.name)).toEqual(['1080p', '720p', '480p', '360p']);
    film.rungs.forEach((r, i) => {
      expect(Math.abs(r.maxrateBps / fixedCaps[i]! - 1), r.id).toBeLessThan(0.01);
    });
  });

  it('probes at the 720p rung (or the source size when smaller) at the top frame rate', () => {
    expect(complexityProbeFor(video({ frameRateFps: 60 }))).toEqual({
      widthPx: 1280,
      heightPx: 720,
      frameRateFps: 60,
      crf: 23,
    });
    expect(complexityProbeFor(video({ widthPx: 1080, heightPx: 1920, frameRateFps: 120 }))).toEqual({
      widthPx: 720,
      heightPx: 1280,
      frameRateFps: 60,
      crf: 23,
    });
    expect(complexityProbeFor(video({ widthPx: 321, heightPx: 181 }))).toMatchObject({
      widthPx: 320,
      heightPx: 180,
    });
  });

  it.each([0, -1, Number.NaN, Number.POSITIVE_INFINITY])('refuses complexity %s', (bpp) => {
    expect(() => planLadder(source({ complexityBpp: bpp }))).toThrow(
      /complexityBpp must be a positive number/,
    );
  });
});

describe('planLadder: minimum and maximum total bitrate', () => {
  const cases: [string, Partial<LadderSourceVideo>, number, number, string[]][] = [
    ['default bounds, fixed ladder', {}, 400_000, 20_000_000, ['1080p', '720p', '480p', '360p']],
    ['max 3 Mb/s: starved 1080p gives way to 720p', {}, 400_000, 3_000_000, ['720p', '480p', '360p']],
    ['max 1 Mb/s: only 360p stays', {}, 400_000, 1_000_000, ['360p']],
    ['min 1.2 Mb/s: 360p too small', {}, 1_200_000, 20_000_000, ['1080p', '720p', '480p']],
    [
      'football, max 6 Mb/s',
      { complexityBpp: 0.12, frameRateFps: 50 },
      400_000,
      6_000_000,
      ['720p', '480p', '360p'],
    ],
    [
      'football, max 12 Mb/s',
      { complexityBpp: 0.12, frameRateFps: 50 },
      400_000,
      12_000_000,
      ['1080p', '720p', '480p', '360p'],
    ],
    [
      'slideshow, min 1 Mb/s: one rung raised to it',
      { complexityBpp: 0.005 },
      1_000_000,
      20_000_000,
      ['1080p'],
    ],
    [
      '4K, 2160p on, default max',
      { widthPx: 3840, heightPx: 2160, frameRateFps: 60 },
      400_000,
      20_000_000,
      ['2160p', '1440p', '1080p', '720p', '480p', '360p'],
    ],
  ];

  it.each(cases)('%s', (_label, v, min, max, names) => {
    const plan = planLadder(
      source(v),
      settings({ minTotalBitrateBps: min, maxTotalBitrateBps: max, enable1440p: true, enable2160p: true }),
    );
    expect(plan.rungs.map((r) => r.name)).toEqual(names);
    for (const r of plan.rungs) {
      const total = r.maxrateBps + AUDIO_BITRATE_BPS;
      expect(total, r.id).toBeGreaterThanOrEqual(min);
      expect(total, r.id).toBeLessThanOrEqual(max);
    }
    // Adjacent rungs stay at least 1.5x apart in total bitrate; 1.2x when the maximum cut the upper.
    for (let i = 1; i < plan.rungs.length; i++) {
      const upper = plan.rungs[i - 1]!.maxrateBps + AUDIO_BITRATE_BPS;
      const lower = plan.rungs[i]!.maxrateBps + AUDIO_BITRATE_BPS;
      expect(upper / lower).toBeGreaterThanOrEqual(upper === max ? 1.2 : 1.5);
    }
  });

  it('says which cap was cut and which rung was dropped for it', () => {
    const plan = planLadder(source(), settings({ maxTotalBitrateBps: 3_000_000 }));
    expect(plan.reasons).toContainEqual(
      '1080p: cap cut from 5 Mb/s to 2.87 Mb/s by the maximum total bitrate (3 Mb/s).',
    );
    expect(plan.reasons).toContainEqual(
      '1080p dropped: cut to 2.87 Mb/s by the maximum, it would get less than 1.2x the bits of 720p (2.87 Mb/s) for more pixels.',
    );
    // A milder cut keeps the rung: 1080p50 football cut from 13.82 to 11.87 Mb/s, still 1.42x 720p's.
    const football = planLadder(
      source({ complexityBpp: 0.12, frameRateFps: 50 }),
      settings({ maxTotalBitrateBps: 12_000_000 }),
    );
    expect(football.rungs.map((r) => [r.name, r.maxrateBps])).toEqual([
      ['1080p', 11_872_000],
      ['720p', 8_295_000],
      ['480p', 3_381_000],
      ['360p', 1_803_000],
    ]);
  });

  it('counts no audio in the totals of a video-only ladder', () => {
    const plan = planLadder(source({}, null), settings({ maxTotalBitrateBps: 2_000_000 }));
    expect(plan.rungs.map((r) => [r.name, r.maxrateBps])).toEqual([
      ['720p', 2_000_000],
      ['480p', 1_500_000],
      ['360p', 800_000],
    ]);
  });
});

describe('planLadder: codecs and dynamic range', () => {
  it('adds HEVC and AV1 rungs at the H.264 sizes with lower caps and their own CRF', () => {
    const plan = planLadder(source(), settings({ codecs: ['h264', 'hevc', 'av1'] }));
    const of = (codec: string) => plan.rungs.filter((r) => r.codec === codec);
    expect(of('h264').map((r) => r.name)).toEqual(['1080p', '720p', '480p', '360p']);
    expect(of('hevc').map((r) => [r.id, r.maxrateBps, r.crf, r.profile])).toEqual([
      ['hevc-1080p', 3_500_000, 28, 'main'],
      ['hevc-720p', 2_100_000, 28, 'main'],
      ['hevc-480p', 1_050_000, 28, 'main'],
      ['hevc-360p', 560_000, 28, 'main'],
    ]);
    expect(of('av1').map((r) => [r.maxrateBps, r.crf])).toEqual([
      [3_000_000, 35],
      [1_800_000, 35],
      [900_000, 35],
      [480_000, 35],
    ]);
    expect(new Set(plan.rungs.map((r) => r.id)).size).toBe(plan.rungs.length);
  });

  it.each<[string, Partial<LadderSourceVideo>, 'pq' | 'hlg' | null, RegExp]>([
    [
      '4K PQ 10-bit',
      { widthPx: 3840, heightPx: 2160, dynamicRange: 'pq', bitDepth: 10 },
      'pq',
      /^HDR \(PQ\) tone-mapped to SDR BT.709 8-bit/,
    ],
    ['HLG 10-bit', { dynamicRange: 'hlg', bitDepth: 10 }, 'hlg', /^HDR \(HLG\) tone-mapped to SDR/],
    ['SDR 10-bit', { bitDepth: 10 }, null, /^10-bit SDR reduced to 8-bit 4:2:0/],
  ])('%s', (_label, v, toneMapFrom, reason) => {
    const plan = planLadder(source(v));
    expect(plan.toneMapFrom).toBe(toneMapFrom);
    expect(plan.reasons).toContainEqual(expect.stringMatching(reason));
    expect(plan.rungs.every((r) => r.pixelFormat === 'yuv420p' && r.profile === 'high')).toBe(true);
  });

  it('does not flag an 8-bit SDR source', () => {
    const plan = planLadder(source());
    expect(plan.toneMapFrom).toBeNull();
    expect(plan.reasons.some((r) => /tone-mapped|reduced to 8-bit/.test(r))).toBe(false);
  });
});

describe('planLadder: audio', () => {
  it.each<[string, number | null, LadderPlan['kind'], number | null, RegExp]>([
    [
      'stereo',
      2,
      'video-and-audio',
      null,
      /^Audio: AAC-LC stereo 128 kb\/s, one rendition \(group "audio"\) shared/,
    ],
    ['5.1 downmixed', 6, 'video-and-audio', 6, /^5.1 audio downmixed to stereo/],
    ['7.1 downmixed', 8, 'video-and-audio', 8, /^7.1 audio downmixed to stereo/],
    ['mono to both channels', 1, 'video-and-audio', null, /^Mono audio sent to both stereo channels/],
    ['no audio: video-only', null, 'video-only', null, /^No audio stream: a video-only ladder/],
  ])('%s', (_label, channels, kind, downmix, reason) => {
    const plan = planLadder(source({}, channels));
    expect(plan.kind).toBe(kind);
    expect(plan.rungs.length).toBe(4);
    expect(plan.reasons).toContainEqual(expect.stringMatching(reason));
    if (channels === null) {
      expect(plan.audio).toBeNull();
    } else {
      expect(plan.audio).toEqual({
        codec: 'aac',
        profile: 'LC',
        channels: 2,
        bitrateBps: 128_000,
        downmixFromChannels: downmix,
        groupId: 'audio',
      });
    }
  });

  it('plans audio only for an audio-only input', () => {
    const plan = planLadder({ durationSec: 180, video: null, audio: { channels: 2 } });
    expect(plan).toMatchObject({ kind: 'audio-only', rungs: [], bitrateMode: null, toneMapFrom: null });
    expect(plan.audio?.bitrateBps).toBe(128_000);
    expect(plan.reasons[0]).toBe('No video stream: an audio-only plan (no video rungs).');
  });

  it('refuses a source with neither video nor audio', () => {
    expect(() => planLadder({ durationSec: 1, video: null, audio: null })).toThrow(/neither video nor audio/);
  });
});

describe('planLadder: one frame and tiny sources', () => {
  it.each<[string, LadderSource, string[]]>([
    [
      'one frame by frame count',
      { durationSec: 0.04, video: video({ frameCount: 1 }), audio: null },
      ['1920x1080@30'],
    ],
    [
      'one frame by duration',
      { durationSec: 0.04, video: video({ frameRateFps: 25 }), audio: null },
      ['1920x1080@25'],
    ],
    [
      'one frame at 0 s and unknown rate',
      { durationSec: 0, video: video({ frameRateFps: null }), audio: null },
      ['1920x1080@30'],
    ],
    [
      'one 60 fps frame keeps the rate',
      { durationSec: 0, video: video({ frameRateFps: 60, frameCount: 1 }), audio: null },
      ['1920x1080@60'],
    ],
    [
      'two seconds is a real video',
      { durationSec: 2, video: video(), audio: null },
      ['1920x1080@30', '1280x720@30', '854x480@30', '640x360@30'],
    ],
    [
      'frame count wins over duration',
      { durationSec: 0, video: video({ frameCount: 50 }), audio: null },
      ['1920x1080@30', '1280x720@30', '854x480@30', '640x360@30'],
    ],
    [
      '320x180 at 60 fps keeps 60',
      { durationSec: 5, video: video({ widthPx: 320, heightPx: 180, frameRateFps: 60 }), audio: null },
      ['320x180@60'],
    ],
    ['2x2', { durationSec: 5, video: video({ widthPx: 2, heightPx: 2 }), audio: null }, ['2x2@30']],
  ])('%s', (_label, src, expected) => {
    const plan = planLadder(src);
    expect(shape(plan)).toEqual(expected);
    expect(plan.rungs[0]!.maxrateBps).toBeGreaterThanOrEqual(DEFAULT_LADDER_SETTINGS.minTotalBitrateBps);
  });

  it('raises a tiny rung to the minimum and says so', () => {
    const plan = planLadder({ durationSec: 5, video: video({ widthPx: 320, heightPx: 180 }), audio: null });
    expect(plan.rungs[0]!.maxrateBps).toBe(400_000);
    expect(plan.reasons).toContainEqual(
      expect.stringMatching(/only 180p is kept, its cap raised from 283 kb\/s to 400 kb\/s/),
    );
    expect(plan.reasons).toContainEqual(expect.stringMatching(/smaller than the smallest rung \(360p\)/));
  });

  it('refuses a size that cannot be encoded', () => {
    expect(() => planLadder(source({ widthPx: 1, heightPx: 1080 }))).toThrow(
      /at least 2x2 pixels, got 1x1080/,
    );
  });
});

describe('validateLadderSettings', () => {
  it('accepts the defaults', () => {
    expect(() => validateLadderSettings(DEFAULT_LADDER_SETTINGS)).not.toThrow();
  });

  it.each<[Partial<LadderSettings>, RegExp]>([
    [{ segmentDurationSec: 0 }, /segmentDurationSec must be 1 to 60 seconds, got 0/],
    [{ segmentDurationSec: Number.NaN }, /segmentDurationSec must be 1 to 60/],
    [{ minTotalBitrateBps: 200_000 }, /minTotalBitrateBps must be .* >= 228000 .*got 200000/],
    [{ minTotalBitrateBps: 500_000.5 }, /minTotalBitrateBps must be a whole number/],
    [
      { maxTotalBitrateBps: 400_000 },
      /maxTotalBitrateBps must be a whole number above minTotalBitrateBps \(400000\), got 400000/,
    ],
    [{ codecs: ['hevc'] }, /codecs must include h264/],
    [{ codecs: ['h264', 'vp9' as never] }, /"vp9" is not one of h264, hevc, av1/],
    [{ codecs: ['h264', 'hevc', 'hevc'] }, /lists a codec twice/],
  ])('refuses %j', (overrides, message) => {
    expect(() => validateLadderSettings(settings(overrides))).toThrow(message);
    expect(() => planLadder(source(), settings(overrides))).toThrow(message);
  });
});

describe('planLadder: reasons', () => {
  it('explains every rung kept and every standard rung dropped', () => {
    const plan = planLadder(source({ widthPx: 1366, heightPx: 768, frameRateFps: 60 }, 6));
    for (const r of plan.rungs) {
      expect(plan.reasons.some((s) => s.startsWith(`${r.id} ${r.widthPx}x${r.heightPx} at `))).toBe(true);
    }
    for (const dropped of ['1080p', '720p']) {
      expect(plan.reasons.some((s) => s.startsWith(`${dropped} dropped`))).toBe(true);
    }
    expect(plan.reasons[0]).toBe('Source video 1366x768 at 60 fps, SDR 8-bit; 6 s segments.');
  });
});
