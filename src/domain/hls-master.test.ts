import { describe, expect, it } from 'vitest';
import {
  type AudioRenditionMedia,
  codecString,
  type MeasuredSegment,
  type ProbedCodec,
  peakSegmentBitrate,
  roundUpBitrate,
  type VideoRungMedia,
  variantBandwidth,
  writeMasterPlaylist,
} from './hls-master.js';

// Segments whose bit rate is a round number: bytes = rate × duration / 8.
const seg = (durationSec: number, bitsPerSecond: number): MeasuredSegment => ({
  durationSec,
  bytes: Math.round((bitsPerSecond * durationSec) / 8),
});

const audio: AudioRenditionMedia = {
  kind: 'rendition',
  groupId: 'aud',
  name: 'English',
  language: 'en',
  channels: 2,
  codecs: 'mp4a.40.2',
  media: { uri: 'audio/index.m3u8', segments: [seg(6, 128_000), seg(6, 128_000), seg(3.5, 128_000)] },
};

const rung = (name: string, width: number, height: number, rates: number[]): VideoRungMedia => ({
  name,
  width,
  height,
  frameRate: 60_000 / 1001,
  videoCodecs: 'avc1.640028',
  media: {
    uri: `${name}/index.m3u8`,
    segments: rates.map((rate, i) => seg(i === rates.length - 1 ? 3.5 : 6, rate)),
  },
});

describe('BANDWIDTH arithmetic', () => {
  it('takes the peak segment and the audio rendition peak, the averages likewise', () => {
    // Video 1 Mb/s, 2 Mb/s, 1 Mb/s over 6 + 6 + 3.5 s; audio a flat 128 kb/s.
    const video = { uri: 'v.m3u8', segments: [seg(6, 1_000_000), seg(6, 2_000_000), seg(3.5, 1_000_000)] };
    expect(variantBandwidth(video)).toEqual({
      bandwidth: 2_000_000,
      // (6 + 12 + 3.5) Mb / 15.5 s = 1 387 096.77 bit/s, rounded up
      averageBandwidth: 1_387_097,
    });
    expect(variantBandwidth(video, audio.media)).toEqual({
      bandwidth: 2_128_000,
      // 1 387 096.77 + 128 000, rounded up once after the sum
      averageBandwidth: 1_515_097,
    });
  });

  it('rounds up, never down, and leaves exact values alone', () => {
    // 1 byte in 3 s = 2.67 bit/s
    expect(variantBandwidth({ uri: 'v', segments: [{ durationSec: 3, bytes: 1 }] })).toEqual({
      bandwidth: 3,
      averageBandwidth: 3,
    });
    // 750 000 bytes in 6.006 s = 999 000.999 bit/s
    expect(variantBandwidth({ uri: 'v', segments: [{ durationSec: 6.006, bytes: 750_000 }] }).bandwidth).toBe(
      999_001,
    );
    expect(roundUpBitrate(1_000_000.0000000001)).toBe(1_000_000);
    expect(roundUpBitrate(1_000_000.01)).toBe(1_000_001);
  });

  it('measures the peak over runs of 0.5 to 1.5 target durations, as RFC 8216 4.1 defines it', () => {
    // ffmpeg's ~21 ms trailing audio segment: 600 bytes of box overhead would read as 228 kb/s alone.
    const tail = [seg(6, 128_000), { durationSec: 0.021, bytes: 600 }];
    expect(peakSegmentBitrate(tail, 6)).toBeCloseTo(((96_000 + 600) * 8) / 6.021, 6);
    // Two 2 s segments (a 4 s run) can carry the peak when the target is 6.
    const short = [seg(2, 1_000_000), seg(2, 3_000_000), seg(2, 3_000_000), seg(2, 1_000_000)];
    expect(peakSegmentBitrate(short, 6)).toBe(3_000_000);
    // Both bounds are the RFC's: 2.9 s runs are too short, 2.9 + 6.4 s too long, so only the
    // quiet middle segment is a run (the busy ends never count on their own).
    expect(peakSegmentBitrate([seg(2.9, 10_000_000), seg(6.4, 1_000_000), seg(2.9, 10_000_000)], 6)).toBe(
      1_000_000,
    );
    // Shorter than half the target: the whole playlist is the only run.
    expect(peakSegmentBitrate([{ durationSec: 1, bytes: 1000 }], 6)).toBe(8000);
  });

  it('refuses segments that cannot be measured', () => {
    expect(() => variantBandwidth({ uri: 'v.m3u8', segments: [] })).toThrow(/v\.m3u8: expected segments/);
    expect(() => variantBandwidth({ uri: 'v', segments: [{ durationSec: 0, bytes: 5 }] })).toThrow(
      /duration > 0/,
    );
    expect(() => variantBandwidth({ uri: 'v', segments: [{ durationSec: 6, bytes: 1.5 }] })).toThrow(
      /byte size/,
    );
  });
});

describe('writeMasterPlaylist', () => {
  it('writes the audio group and the variants sorted by BANDWIDTH', () => {
    const text = writeMasterPlaylist({
      rungs: [
        rung('1080p', 1920, 1080, [5_000_000, 6_000_000, 4_000_000]),
        rung('480p', 854, 480, [1_000_000, 1_200_000, 900_000]),
        rung('720p', 1280, 720, [2_500_000, 3_000_000, 2_000_000]),
      ],
      audio,
    });
    expect(text).toBe(
      [
        '#EXTM3U',
        '#EXT-X-VERSION:7',
        '#EXT-X-INDEPENDENT-SEGMENTS',
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",LANGUAGE="en",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",URI="audio/index.m3u8"',
        // 480p: peak 1.2 Mb/s + 128 kb/s; average (6 + 7.2 + 3.15) Mb / 15.5 s + 128 kb/s, rounded up
        '#EXT-X-STREAM-INF:BANDWIDTH=1328000,AVERAGE-BANDWIDTH=1182839,CODECS="avc1.640028,mp4a.40.2",RESOLUTION=854x480,FRAME-RATE=59.940,AUDIO="aud"',
        '480p/index.m3u8',
        '#EXT-X-STREAM-INF:BANDWIDTH=3128000,AVERAGE-BANDWIDTH=2708646,CODECS="avc1.640028,mp4a.40.2",RESOLUTION=1280x720,FRAME-RATE=59.940,AUDIO="aud"',
        '720p/index.m3u8',
        // 1080p: (30 + 36 + 14) Mb / 15.5 s = 5 161 290.3 bit/s + 128 kb/s
        '#EXT-X-STREAM-INF:BANDWIDTH=6128000,AVERAGE-BANDWIDTH=5289291,CODECS="avc1.640028,mp4a.40.2",RESOLUTION=1920x1080,FRAME-RATE=59.940,AUDIO="aud"',
        '1080p/index.m3u8',
        '',
      ].join('\n'),
    );
  });

  it('omits audio entirely for a video-only ladder', () => {
    const text = writeMasterPlaylist({ rungs: [rung('720p', 1280, 720, [2_000_000, 2_000_000, 2_000_000])] });
    expect(text).not.toContain('EXT-X-MEDIA');
    expect(text).not.toContain('AUDIO=');
    expect(text).toContain(
      '#EXT-X-STREAM-INF:BANDWIDTH=2000000,AVERAGE-BANDWIDTH=2000000,CODECS="avc1.640028",RESOLUTION=1280x720,FRAME-RATE=59.940\n720p/index.m3u8\n',
    );
  });

  it('lists a muxed audio codec without an audio group and without adding audio bytes twice', () => {
    const text = writeMasterPlaylist({
      rungs: [rung('720p', 1280, 720, [2_000_000, 2_000_000, 2_000_000])],
      audio: { kind: 'muxed', codecs: 'mp4a.40.2' },
    });
    expect(text).not.toContain('EXT-X-MEDIA');
    expect(text).toContain(
      '#EXT-X-STREAM-INF:BANDWIDTH=2000000,AVERAGE-BANDWIDTH=2000000,CODECS="avc1.640028,mp4a.40.2",RESOLUTION=1280x720,FRAME-RATE=59.940\n',
    );
  });

  it('gives an audio-only package one audio-only variant', () => {
    expect(writeMasterPlaylist({ rungs: [], audio })).toBe(
      [
        '#EXTM3U',
        '#EXT-X-VERSION:7',
        '#EXT-X-INDEPENDENT-SEGMENTS',
        '#EXT-X-STREAM-INF:BANDWIDTH=128000,AVERAGE-BANDWIDTH=128000,CODECS="mp4a.40.2"',
        'audio/index.m3u8',
        '',
      ].join('\n'),
    );
  });

  it("lists every codec's variants, each with its own CODECS, sorted by BANDWIDTH across codecs", () => {
    const text = writeMasterPlaylist({
      rungs: [
        rung('720p', 1280, 720, [3_000_000, 3_000_000, 3_000_000]),
        {
          ...rung('hevc-720p', 1280, 720, [2_000_000, 2_000_000, 2_000_000]),
          videoCodecs: 'hvc1.1.6.L93.90',
        },
        { ...rung('av1-720p', 1280, 720, [1_800_000, 1_800_000, 1_800_000]), videoCodecs: 'av01.0.05M.08' },
      ],
      audio,
    });
    expect(
      [...text.matchAll(/^#EXT-X-STREAM-INF:BANDWIDTH=(\d+),.*CODECS="([^"]+)".*\n(.+)$/gm)].map(
        (m) => `${m[3]} ${m[1]} ${m[2]}`,
      ),
    ).toEqual([
      'av1-720p/index.m3u8 1928000 av01.0.05M.08,mp4a.40.2',
      'hevc-720p/index.m3u8 2128000 hvc1.1.6.L93.90,mp4a.40.2',
      '720p/index.m3u8 3128000 avc1.640028,mp4a.40.2',
    ]);
  });

  it('writes FRAME-RATE with three decimals', () => {
    const text = writeMasterPlaylist({
      rungs: [{ ...rung('480p', 854, 480, [1, 1, 1]), frameRate: 30_000 / 1001 }],
    });
    expect(text).toContain('FRAME-RATE=29.970');
  });

  it.each([
    ['nothing to write', { rungs: [] }, /expected video rungs or an audio rendition/],
    [
      'a quote in NAME',
      { rungs: [rung('720p', 1280, 720, [1, 1, 1])], audio: { ...audio, name: 'Eng"lish' } },
      /NAME: expected .* got "Eng\\"lish"/,
    ],
    [
      'a line break in a URI',
      { rungs: [{ ...rung('720p', 1280, 720, [1, 1, 1]), media: { uri: 'a\nb', segments: [seg(6, 1)] } }] },
      /media playlist URI/,
    ],
    [
      'a URI read as a tag',
      { rungs: [{ ...rung('720p', 1280, 720, [1, 1, 1]), media: { uri: '#EXT', segments: [seg(6, 1)] } }] },
      /not starting with '#'/,
    ],
    [
      'a GROUP-ID with a space',
      { rungs: [rung('720p', 1280, 720, [1, 1, 1])], audio: { ...audio, groupId: 'a b' } },
      /GROUP-ID/,
    ],
    [
      'a CODECS entry with a quote',
      { rungs: [{ ...rung('720p', 1280, 720, [1, 1, 1]), videoCodecs: 'avc1"' }] },
      /CODECS/,
    ],
    [
      'a zero frame rate',
      { rungs: [{ ...rung('720p', 1280, 720, [1, 1, 1]), frameRate: 0 }] },
      /rung 720p: expected a frame rate/,
    ],
    ['an odd width', { rungs: [{ ...rung('720p', 1280, 720, [1, 1, 1]), width: 12.5 }] }, /rung 720p width/],
    [
      'zero channels',
      { rungs: [rung('720p', 1280, 720, [1, 1, 1])], audio: { ...audio, channels: 0 } },
      /CHANNELS/,
    ],
  ])('refuses %s', (_name, input, message) => {
    expect(() => writeMasterPlaylist(input as Parameters<typeof writeMasterPlaylist>[0])).toThrow(message);
  });
});

describe('codecString', () => {
  it.each<[ProbedCodec, string]>([
    [{ codecName: 'h264', profile: 'High', level: 40 }, 'avc1.640028'],
    [{ codecName: 'h264', profile: 'High', level: 42 }, 'avc1.64002a'],
    [{ codecName: 'h264', profile: 'High', level: 51 }, 'avc1.640033'],
    [{ codecName: 'h264', profile: 'Main', level: 31 }, 'avc1.4d001f'],
    // x264's Main sets constraint_set1 (Apple's examples list avc1.4d401f)
    [{ codecName: 'h264', profile: 'Main', level: 31, constraintFlags: 0x40 }, 'avc1.4d401f'],
    [{ codecName: 'h264', profile: 'Baseline', level: 30, constraintFlags: 0xe0 }, 'avc1.42e01e'],
    [{ codecName: 'h264', profile: 'Constrained Baseline', level: 30 }, 'avc1.42401e'],
    [{ codecName: 'h264', profile: 'High 10', level: 41 }, 'avc1.6e0029'],
    [{ codecName: 'hevc', profile: 'Main', level: 120 }, 'hvc1.1.6.L120.90'],
    [{ codecName: 'hevc', profile: 'Main 10', level: 153 }, 'hvc1.2.4.L153.90'],
    [{ codecName: 'hevc', profile: 'Main 10', level: 123, constraintBytes: [0xb0] }, 'hvc1.2.4.L123.B0'],
    [
      { codecName: 'hevc', profile: 'Main 10', level: 150, tier: 'H', sampleEntry: 'hev1' },
      'hev1.2.4.H150.90',
    ],
    [
      { codecName: 'hevc', profile: 'Main', level: 93, constraintBytes: [0x90, 0, 0, 0, 0, 0] },
      'hvc1.1.6.L93.90',
    ],
    // What x265 (Main, 8-bit, 320x180) writes, as package-ladder reads it from the hvcC record.
    [
      { codecName: 'hevc', profile: 'Main', level: 60, tier: 'L', constraintBytes: [0x90, 0, 0, 0, 0, 0] },
      'hvc1.1.6.L60.90',
    ],
    // AV1: profile, two-digit seq_level_idx, tier, two-digit bit depth.
    [{ codecName: 'av1', profile: 'Main', level: 0 }, 'av01.0.00M.08'],
    [{ codecName: 'av1', profile: 'Main', level: 8 }, 'av01.0.08M.08'],
    [{ codecName: 'av1', profile: 'Main', level: 13, av1Tier: 'H', bitDepth: 10 }, 'av01.0.13H.10'],
    [{ codecName: 'av1', profile: 'High', level: 31 }, 'av01.1.31M.08'],
    [{ codecName: 'av1', profile: 'Professional', level: 12, bitDepth: 12 }, 'av01.2.12M.12'],
    [{ codecName: 'aac', profile: 'LC' }, 'mp4a.40.2'],
    [{ codecName: 'aac', profile: 'HE-AAC' }, 'mp4a.40.5'],
    [{ codecName: 'aac', profile: 'HE-AACv2' }, 'mp4a.40.29'],
  ])('%j -> %s', (codec, expected) => {
    expect(codecString(codec)).toBe(expected);
  });

  it.each<[ProbedCodec, RegExp]>([
    [{ codecName: 'h264', profile: 'High', level: 4.0 }, /h264 level: expected one of .* got 4/],
    [{ codecName: 'h264', profile: 'High' }, /h264 level/],
    [{ codecName: 'h264', profile: 'High 4:4:4 Intra', level: 40 }, /h264 profile: expected one of/],
    [{ codecName: 'h264', profile: 'High', level: 40, constraintFlags: 256 }, /constraint flags/],
    [{ codecName: 'hevc', profile: 'Main', level: 40 }, /hevc level/],
    [{ codecName: 'hevc', profile: 'Rext', level: 120 }, /hevc profile/],
    [{ codecName: 'aac', profile: 'Main' }, /aac profile/],
    [{ codecName: 'av1', profile: 'Main' }, /av1 level/],
    // 24-30 are not levels; 31 ("no level constraint") is.
    [{ codecName: 'av1', profile: 'Main', level: 24 }, /av1 level: expected one of .* got 24/],
    [
      { codecName: 'av1', profile: 'Main 10', level: 8 },
      /av1 profile: expected one of Main, High, Professional/,
    ],
    [{ codecName: 'av1', profile: 'Main', level: 8, bitDepth: 9 }, /av1 bit depth/],
    [{ codecName: 'vp9', profile: 'Profile 0' }, /codec: expected h264, hevc, av1 or aac, got "vp9"/],
  ])('refuses %j', (codec, message) => {
    expect(() => codecString(codec)).toThrow(message);
  });
});
