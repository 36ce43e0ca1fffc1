import { describe, expect, it } from 'vitest';
import {
  type DashAudioRepresentation,
  type DashVideoRepresentation,
  isoDuration,
  numberTemplate,
  segmentTimeline,
  writeDashManifest,
  xmlAttribute,
} from './dash-mpd.js';

// Segments whose bit rate is a round number: bytes = rate × duration / 8.
const segments = (dir: string, durations: number[], bitsPerSecond: number[]) =>
  durations.map((durationSec, i) => ({
    uri: `${dir}/seg-${String(i).padStart(5, '0')}.m4s`,
    durationSec,
    bytes: Math.round((bitsPerSecond[i]! * durationSec) / 8),
  }));

const rung = (id: string, width: number, height: number, rates: number[]): DashVideoRepresentation => ({
  id,
  codecs: 'avc1.64001f',
  timescale: 15360,
  initialization: `${id}/init_${id}.mp4`,
  segments: segments(id, [2, 2], rates),
  width,
  height,
  frameRate: '30/1',
});

const audio: DashAudioRepresentation = {
  id: 'audio',
  codecs: 'mp4a.40.2',
  timescale: 48000,
  initialization: 'audio/init_audio.mp4',
  // What ffmpeg 5.1's hls muxer writes for 4 s of AAC at 48 kHz: 94 frames, 94 frames, 1 frame.
  // Peak (RFC 8216 4.1 windows of 1-3 s): the second segment with the tail, 32 560 bytes in
  // 2.026666 s = 128 526.4 bit/s; the 560-byte tail alone (210 000 bit/s) is no window of its own.
  segments: [
    { uri: 'audio/seg-00000.m4s', durationSec: 2.005333, bytes: 32_086 },
    { uri: 'audio/seg-00001.m4s', durationSec: 2.005333, bytes: 32_000 },
    { uri: 'audio/seg-00002.m4s', durationSec: 0.021333, bytes: 560 },
  ],
  sampleRate: 48000,
  channels: 2,
};

describe('numberTemplate', () => {
  it.each([
    {
      name: 'zero-padded from 0 (the hls muxer)',
      uris: ['a/seg-00000.m4s', 'a/seg-00001.m4s', 'a/seg-00002.m4s'],
      template: { media: 'a/seg-$Number%05d$.m4s', startNumber: 0 },
    },
    {
      name: 'a digit in the extension is not the number',
      uris: ['seg-7.mp4'],
      template: { media: 'seg-$Number$.mp4', startNumber: 7 },
    },
    {
      name: 'unpadded, crossing a power of ten',
      uris: ['h264-1080p/s9.m4s', 'h264-1080p/s10.m4s'],
      template: { media: 'h264-1080p/s$Number$.m4s', startNumber: 9 },
    },
    {
      name: 'a padded number grown wider than its padding (printf)',
      // s-09.m4s ... s-99.m4s, s-100.m4s
      uris: Array.from({ length: 92 }, (_, i) => `s-${String(9 + i).padStart(2, '0')}.m4s`),
      template: { media: 's-$Number%02d$.m4s', startNumber: 9 },
    },
    {
      name: 'a literal $ doubled',
      uris: ['a$b/seg-01.m4s', 'a$b/seg-02.m4s'],
      template: { media: 'a$$b/seg-$Number%02d$.m4s', startNumber: 1 },
    },
    {
      name: 'the last run of digits in the name that counts',
      uris: ['r2/part7-seg3.m4s', 'r2/part7-seg4.m4s'],
      template: { media: 'r2/part7-seg$Number$.m4s', startNumber: 3 },
    },
  ])('$name', ({ uris, template }) => {
    expect(numberTemplate(uris)).toEqual(template);
  });

  it.each([
    { name: 'a gap', uris: ['seg-00000.m4s', 'seg-00002.m4s'] },
    { name: 'another directory', uris: ['a/seg-00000.m4s', 'b/seg-00001.m4s'] },
    { name: 'no number', uris: ['init.mp4'] },
    { name: 'nothing', uris: [] },
  ])('refuses $name', ({ uris }) => {
    expect(() => numberTemplate(uris)).toThrow(RangeError);
  });
});

describe('segmentTimeline', () => {
  it('merges equal durations into one run and starts at tick 0', () => {
    expect(segmentTimeline([2, 2, 2, 1.5], 15360)).toEqual([
      { startTicks: 0, durationTicks: 30720, count: 3 },
      { startTicks: 92160, durationTicks: 23040, count: 1 },
    ]);
  });

  it("recovers the muxer's exact ticks from EXTINF's microseconds", () => {
    // 2.005333 s = 96256 samples of 48 kHz (94 AAC frames); 0.021333 s = 1024 samples.
    expect(segmentTimeline([2.005333, 2.005333, 0.021333], 48000)).toEqual([
      { startTicks: 0, durationTicks: 96256, count: 2 },
      { startTicks: 192512, durationTicks: 1024, count: 1 },
    ]);
  });

  it('does not let rounding accumulate: boundaries are the rounded running total', () => {
    // Three thirds of a second in milliseconds: 333 + 334 + 333, ending exactly at 1000.
    const runs = segmentTimeline([1 / 3, 1 / 3, 1 / 3], 1000);
    expect(runs).toEqual([
      { startTicks: 0, durationTicks: 333, count: 1 },
      { startTicks: 333, durationTicks: 334, count: 1 },
      { startTicks: 667, durationTicks: 333, count: 1 },
    ]);
  });
});

describe('isoDuration', () => {
  it.each([
    [4, 'PT4S'],
    [4.032, 'PT4.032S'],
    [4.5, 'PT4.5S'],
    // Up, never down: the presentation must not end before its last sample.
    [4.0001, 'PT4.001S'],
    // Float noise on an exact value is not rounded up.
    [0.1 + 0.2 + 3.7, 'PT4S'],
    [0, 'PT0S'],
    [60, 'PT1M0S'],
    [3725.25, 'PT1H2M5.25S'],
    [7200, 'PT2H0S'],
  ])('%s s -> %s', (seconds, text) => {
    expect(isoDuration(seconds)).toBe(text);
  });

  it.each([-1, Number.NaN, Number.POSITIVE_INFINITY])('refuses %s', (seconds) => {
    expect(() => isoDuration(seconds)).toThrow(RangeError);
  });
});

describe('xmlAttribute', () => {
  it('escapes the five XML specials', () => {
    expect(xmlAttribute('a', `<&>"'`)).toBe('a="&lt;&amp;&gt;&quot;&apos;"');
    expect(xmlAttribute('n', 42)).toBe('n="42"');
  });

  it('refuses control characters (an attribute cannot carry them)', () => {
    expect(() => xmlAttribute('a', 'x\ny')).toThrow(RangeError);
    expect(() => xmlAttribute('a', 'x\u0000')).toThrow(RangeError);
  });
});

describe('writeDashManifest', () => {
  it('writes a static isoff-live MPD with one video and one audio AdaptationSet', () => {
    const mpd = writeDashManifest({
      // Any order in; lowest bandwidth first out.
      video: [
        rung('h264-480p', 854, 480, [1_000_000, 1_200_000]),
        rung('h264-360p', 640, 360, [500_000, 400_000]),
      ],
      audio,
    });
    expect(mpd).toBe(
      [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" type="static" mediaPresentationDuration="PT4.032S" minBufferTime="PT2.006S">',
        '  <Period id="0" start="PT0S">',
        '    <AdaptationSet id="0" contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1" maxWidth="854" maxHeight="480">',
        '      <Representation id="h264-360p" bandwidth="500000" codecs="avc1.64001f" width="640" height="360" frameRate="30" sar="1:1">',
        '        <SegmentTemplate timescale="15360" initialization="h264-360p/init_h264-360p.mp4" media="h264-360p/seg-$Number%05d$.m4s" startNumber="0">',
        '          <SegmentTimeline>',
        '            <S t="0" d="30720" r="1"/>',
        '          </SegmentTimeline>',
        '        </SegmentTemplate>',
        '      </Representation>',
        '      <Representation id="h264-480p" bandwidth="1200000" codecs="avc1.64001f" width="854" height="480" frameRate="30" sar="1:1">',
        '        <SegmentTemplate timescale="15360" initialization="h264-480p/init_h264-480p.mp4" media="h264-480p/seg-$Number%05d$.m4s" startNumber="0">',
        '          <SegmentTimeline>',
        '            <S t="0" d="30720" r="1"/>',
        '          </SegmentTimeline>',
        '        </SegmentTemplate>',
        '      </Representation>',
        '    </AdaptationSet>',
        '    <AdaptationSet id="1" contentType="audio" mimeType="audio/mp4" segmentAlignment="true" startWithSAP="1">',
        '      <Representation id="audio" bandwidth="128527" codecs="mp4a.40.2" audioSamplingRate="48000">',
        '        <AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="2"/>',
        '        <SegmentTemplate timescale="48000" initialization="audio/init_audio.mp4" media="audio/seg-$Number%05d$.m4s" startNumber="0">',
        '          <SegmentTimeline>',
        '            <S t="0" d="96256" r="1"/>',
        '            <S d="1024"/>',
        '          </SegmentTimeline>',
        '        </SegmentTemplate>',
        '      </Representation>',
        '    </AdaptationSet>',
        '  </Period>',
        '</MPD>',
        '',
      ].join('\n'),
    );
  });

  it('gives each Representation its own peak, not the audio added (audio is its own AdaptationSet)', () => {
    const mpd = writeDashManifest({ video: [rung('v', 640, 360, [300_000, 900_000])], audio });
    expect(mpd).toContain('<Representation id="v" bandwidth="900000"');
    expect(mpd).toContain('<Representation id="audio" bandwidth="128527"');
  });

  it('writes a video-only and an audio-only MPD', () => {
    const videoOnly = writeDashManifest({ video: [rung('v', 640, 360, [500_000, 500_000])] });
    expect(videoOnly).toContain('contentType="video"');
    expect(videoOnly).not.toContain('contentType="audio"');
    expect(videoOnly).toContain('mediaPresentationDuration="PT4S"');

    const audioOnly = writeDashManifest({ video: [], audio: { ...audio, language: 'en' } });
    expect(audioOnly).not.toContain('contentType="video"');
    expect(audioOnly).toContain('<AdaptationSet id="0" contentType="audio" mimeType="audio/mp4" lang="en"');
  });

  it('writes one video AdaptationSet per codec, in the order the codecs first come', () => {
    const codec = (rep: DashVideoRepresentation, codecs: string) => ({
      ...rep,
      id: `${codecs.slice(0, 4)}-${rep.id}`,
      codecs,
    });
    const mpd = writeDashManifest({
      video: [
        codec(rung('480p', 854, 480, [1_000_000, 1_000_000]), 'avc1.64001e'),
        codec(rung('360p', 640, 360, [500_000, 500_000]), 'avc1.64001e'),
        codec(rung('480p', 854, 480, [700_000, 700_000]), 'hvc1.1.6.L90.90'),
        codec(rung('360p', 640, 360, [350_000, 350_000]), 'hvc1.1.6.L63.90'),
        codec(rung('360p', 640, 360, [300_000, 300_000]), 'av01.0.04M.08'),
      ],
      audio,
    });
    const sets = [...mpd.matchAll(/<AdaptationSet ([^>]*)>([\s\S]*?)<\/AdaptationSet>/g)].map((m) => {
      const id = /id="(\d+)"/.exec(m[1]!)?.[1];
      const type = /contentType="(\w+)"/.exec(m[1]!)?.[1];
      const reps = [...m[2]!.matchAll(/<Representation id="([^"]+)"/g)].map((r) => r[1]);
      const aligned = m[1]!.includes('segmentAlignment="true"') ? ' aligned' : '';
      return `${id} ${type}${aligned}: ${reps.join(' ')}`;
    });
    expect(sets).toEqual([
      '0 video aligned: avc1-360p avc1-480p',
      '1 video aligned: hvc1-360p hvc1-480p',
      '2 video aligned: av01-360p',
      '3 audio aligned: audio',
    ]);
    // Each set's maximum size is its own rungs': the AV1 set has only 360p.
    expect(mpd).toContain(
      '<AdaptationSet id="2" contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1" maxWidth="640" maxHeight="360">',
    );
  });

  it('writes rational frame rates and leaves out segmentAlignment when rungs are cut differently', () => {
    const ntsc = { ...rung('a', 640, 360, [500_000, 500_000]), frameRate: '30000/1001' };
    const other = { ...rung('b', 854, 480, [900_000, 900_000, 900_000]) };
    other.segments = segments('b', [1.5, 1.5, 1], [900_000, 900_000, 900_000]);
    const mpd = writeDashManifest({ video: [ntsc, other] });
    expect(mpd).toContain('frameRate="30000/1001"');
    expect(mpd).not.toContain('segmentAlignment');
  });

  it('escapes attribute values', () => {
    const odd = { ...rung('v', 640, 360, [500_000, 500_000]), initialization: 'v/init&"1".mp4' };
    expect(writeDashManifest({ video: [odd] })).toContain('initialization="v/init&amp;&quot;1&quot;.mp4"');
  });

  it.each([
    { name: 'no tracks', input: { video: [] } },
    { name: 'a duplicate id', input: { video: [rung('x', 640, 360, [1, 1]), rung('x', 854, 480, [1, 1])] } },
    { name: 'an id with a space', input: { video: [rung('a b', 640, 360, [1, 1])] } },
    { name: 'a bad frame rate', input: { video: [{ ...rung('v', 640, 360, [1, 1]), frameRate: '29.97' }] } },
    { name: 'a zero timescale', input: { video: [{ ...rung('v', 640, 360, [1, 1]), timescale: 0 }] } },
    { name: 'a zero width', input: { video: [{ ...rung('v', 640, 360, [1, 1]), width: 0 }] } },
    {
      name: 'segments out of order',
      input: {
        video: [{ ...rung('v', 640, 360, [1, 1]), segments: segments('v', [2, 2], [1, 1]).reverse() }],
      },
    },
    {
      name: 'a segment shorter than a tick',
      input: {
        video: [
          { ...rung('v', 640, 360, [1, 1]), timescale: 10, segments: segments('v', [2, 0.01], [1, 1]) },
        ],
      },
    },
  ])('refuses $name', ({ input }) => {
    expect(() => writeDashManifest(input)).toThrow(RangeError);
  });
});
