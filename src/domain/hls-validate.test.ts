import { getOptions } from 'hls-parser';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type AudioRenditionMedia, type MeasuredSegment, writeMasterPlaylist } from './hls-master.js';
import {
  type FindingCode,
  type HlsPackageInput,
  resolvePackageUri,
  validateHlsPackage,
} from './hls-validate.js';

// A hand-made package: 720p and 480p rungs and one audio rendition, 6 s CMAF segments plus a 3.5 s
// tail (21.5 s in all), each playlist with its own init segment. The master is written by
// writeMasterPlaylist from the same sizes, so "good" also proves writer and validator agree.

const DURATIONS = [6, 6, 6, 3.5];
const SOURCE_DURATION = 21.5;

interface Rendition {
  dir: string;
  /** bit/s of each segment */
  rates: number[];
}

const RUNGS = {
  '480p': { dir: '480p', rates: [1_000_000, 1_200_000, 900_000, 500_000] },
  '720p': { dir: '720p', rates: [2_500_000, 3_000_000, 2_000_000, 1_000_000] },
};
const AUDIO: Rendition = { dir: 'audio', rates: [128_000, 128_000, 128_000, 128_000] };

const segments = (rendition: Rendition): MeasuredSegment[] =>
  DURATIONS.map((durationSec, i) => ({
    durationSec,
    bytes: Math.round((rendition.rates[i]! * durationSec) / 8),
  }));

function mediaPlaylist(durations: readonly number[]): string {
  return [
    '#EXTM3U',
    '#EXT-X-VERSION:7',
    '#EXT-X-TARGETDURATION:6',
    '#EXT-X-MEDIA-SEQUENCE:0',
    '#EXT-X-PLAYLIST-TYPE:VOD',
    '#EXT-X-MAP:URI="init.mp4"',
    ...durations.flatMap((duration, i) => [`#EXTINF:${duration.toFixed(6)},`, `seg_00${i}.m4s`]),
    '#EXT-X-ENDLIST',
    '',
  ].join('\n');
}

const audioRendition: AudioRenditionMedia = {
  kind: 'rendition',
  groupId: 'aud',
  name: 'English',
  language: 'en',
  channels: 2,
  codecs: 'mp4a.40.2',
  media: { uri: 'audio/index.m3u8', segments: segments(AUDIO) },
};

interface TestPackage extends HlsPackageInput {
  files: Map<string, number>;
}

function packageOf(renditions: Rendition[], masterText: string): TestPackage {
  const files = new Map<string, number>();
  const mediaPlaylists: Record<string, string> = {};
  for (const rendition of renditions) {
    mediaPlaylists[`${rendition.dir}/index.m3u8`] = mediaPlaylist(DURATIONS);
    files.set(`${rendition.dir}/init.mp4`, 812);
    segments(rendition).forEach((segment, i) => {
      files.set(`${rendition.dir}/seg_00${i}.m4s`, segment.bytes);
    });
  }
  return {
    masterPath: 'master.m3u8',
    masterText,
    mediaPlaylists,
    files,
    sizeOf: (path) => files.get(path),
    expectedDurationSec: SOURCE_DURATION,
  };
}

function goodPackage(): TestPackage {
  const masterText = writeMasterPlaylist({
    rungs: [
      {
        name: '720p',
        width: 1280,
        height: 720,
        frameRate: 30,
        videoCodecs: 'avc1.64001f',
        media: { uri: '720p/index.m3u8', segments: segments(RUNGS['720p']), targetDurationSec: 6 },
      },
      {
        name: '480p',
        width: 854,
        height: 480,
        frameRate: 30,
        videoCodecs: 'avc1.64001e',
        media: { uri: '480p/index.m3u8', segments: segments(RUNGS['480p']), targetDurationSec: 6 },
      },
    ],
    audio: audioRendition,
  });
  return {
    ...packageOf([RUNGS['480p'], RUNGS['720p'], AUDIO], masterText),
    expectedCodecs: {
      '480p/index.m3u8': 'avc1.64001e,mp4a.40.2',
      '720p/index.m3u8': 'avc1.64001f,mp4a.40.2',
    },
  };
}

const codes = (input: HlsPackageInput): FindingCode[] =>
  validateHlsPackage(input).map((finding) => finding.code);

// Edits one attribute of the 720p EXT-X-STREAM-INF line.
function set720pAttribute(pkg: TestPackage, attribute: string, value: string | undefined): void {
  pkg.masterText = pkg.masterText
    .split('\n')
    .map((line) => {
      if (!line.includes('RESOLUTION=1280x720')) return line;
      const pattern = new RegExp(`([:,])${attribute}=[^,]*(,?)`);
      return value === undefined
        ? line.replace(pattern, '$1')
        : line.replace(pattern, `$1${attribute}=${value}$2`);
    })
    .join('\n');
}

function edit720p(pkg: TestPackage, from: string, to: string): void {
  const text = pkg.mediaPlaylists['720p/index.m3u8']!;
  if (!text.includes(from)) throw new Error(`test setup: ${from} not in the 720p playlist`);
  pkg.mediaPlaylists = { ...pkg.mediaPlaylists, '720p/index.m3u8': text.replace(from, to) };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('validateHlsPackage: a good package', () => {
  it('has no findings', () => {
    const pkg = goodPackage();
    // The written numbers the boundary cases below are derived from.
    expect(pkg.masterText).toContain(
      'BANDWIDTH=3128000,AVERAGE-BANDWIDTH=2383814,CODECS="avc1.64001f,mp4a.40.2"',
    );
    expect(validateHlsPackage(pkg)).toEqual([]);
  });

  it('compares CODECS as a set of entries', () => {
    const pkg = goodPackage();
    pkg.expectedCodecs = { ...pkg.expectedCodecs, '720p/index.m3u8': 'mp4a.40.2, avc1.64001f' };
    expect(validateHlsPackage(pkg)).toEqual([]);
  });

  it('passes a video-only ladder and an audio-only package', () => {
    const videoOnly = packageOf(
      [RUNGS['720p']],
      writeMasterPlaylist({
        rungs: [
          {
            name: '720p',
            width: 1280,
            height: 720,
            frameRate: 30,
            videoCodecs: 'avc1.64001f',
            media: { uri: '720p/index.m3u8', segments: segments(RUNGS['720p']) },
          },
        ],
      }),
    );
    expect(
      validateHlsPackage({ ...videoOnly, expectedCodecs: { '720p/index.m3u8': 'avc1.64001f' } }),
    ).toEqual([]);

    const audioOnly = packageOf([AUDIO], writeMasterPlaylist({ rungs: [], audio: audioRendition }));
    expect(validateHlsPackage({ ...audioOnly, expectedCodecs: { 'audio/index.m3u8': 'mp4a.40.2' } })).toEqual(
      [],
    );

    // ffmpeg's form of it: the audio variant also names its own playlist as its AUDIO group.
    const selfGrouped = audioOnly.masterText.replace(
      '#EXT-X-STREAM-INF:',
      '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="a",DEFAULT=YES,URI="audio/index.m3u8"\n#EXT-X-STREAM-INF:AUDIO="aud",',
    );
    expect(selfGrouped).toContain('AUDIO="aud",BANDWIDTH=128000,');
    expect(validateHlsPackage({ ...audioOnly, masterText: selfGrouped })).toEqual([]);
  });

  it('measures byte-range segments by their range, not their file', () => {
    const lengths = [400_000, 500_000, 300_000];
    const text = [
      '#EXTM3U',
      '#EXT-X-VERSION:7',
      '#EXT-X-TARGETDURATION:6',
      '#EXT-X-PLAYLIST-TYPE:VOD',
      '#EXT-X-MAP:URI="main.mp4",BYTERANGE="800@0"',
      ...lengths.flatMap((length, i) => [
        '#EXTINF:6.0,',
        `#EXT-X-BYTERANGE:${length}@${800 + i * 100_000}`,
        'main.mp4',
      ]),
      '#EXT-X-ENDLIST',
    ].join('\n');
    const masterText = writeMasterPlaylist({
      rungs: [
        {
          name: '720p',
          width: 1280,
          height: 720,
          frameRate: 30,
          videoCodecs: 'avc1.64001f',
          media: { uri: 'v/index.m3u8', segments: lengths.map((bytes) => ({ durationSec: 6, bytes })) },
        },
      ],
    });
    const input: HlsPackageInput = {
      masterPath: 'master.m3u8',
      masterText,
      mediaPlaylists: { 'v/index.m3u8': text },
      sizeOf: (path) => (path === 'v/main.mp4' ? 1_300_000 : undefined),
    };
    expect(validateHlsPackage(input)).toEqual([]);
  });
});

describe('validateHlsPackage: each defect gives exactly its finding', () => {
  it.each<[string, (pkg: TestPackage) => void, FindingCode[]]>([
    [
      'an unparsable master',
      (pkg) => {
        pkg.masterText = 'hello';
      },
      ['PLAYLIST_UNPARSABLE'],
    ],
    ['an unparsable media playlist', (pkg) => edit720p(pkg, '#EXTM3U\n', ''), ['PLAYLIST_UNPARSABLE']],
    [
      'a media playlist as the master',
      (pkg) => {
        pkg.masterText = pkg.mediaPlaylists['720p/index.m3u8']!;
      },
      ['NOT_A_MASTER_PLAYLIST'],
    ],
    [
      'a master where a media playlist belongs',
      (pkg) => {
        pkg.mediaPlaylists = { ...pkg.mediaPlaylists, '720p/index.m3u8': pkg.masterText };
      },
      ['NOT_A_MEDIA_PLAYLIST'],
    ],
    [
      'a missing media playlist',
      (pkg) => {
        const { '720p/index.m3u8': _gone, ...rest } = pkg.mediaPlaylists;
        pkg.mediaPlaylists = rest;
      },
      ['PLAYLIST_MISSING'],
    ],
    [
      'no EXT-X-INDEPENDENT-SEGMENTS in the master',
      (pkg) => {
        pkg.masterText = pkg.masterText.replace('#EXT-X-INDEPENDENT-SEGMENTS\n', '');
      },
      ['NO_INDEPENDENT_SEGMENTS'],
    ],
    ['no PLAYLIST-TYPE', (pkg) => edit720p(pkg, '#EXT-X-PLAYLIST-TYPE:VOD\n', ''), ['NOT_VOD']],
    ['an EVENT playlist', (pkg) => edit720p(pkg, 'PLAYLIST-TYPE:VOD', 'PLAYLIST-TYPE:EVENT'), ['NOT_VOD']],
    ['no EXT-X-ENDLIST', (pkg) => edit720p(pkg, '#EXT-X-ENDLIST\n', ''), ['NO_ENDLIST']],
    ['a missing segment', (pkg) => void pkg.files.delete('720p/seg_002.m4s'), ['SEGMENT_MISSING']],
    ['an empty segment', (pkg) => void pkg.files.set('720p/seg_002.m4s', 0), ['SEGMENT_EMPTY']],
    // Shared by both variants, the audio playlist is still checked (and reported) once.
    ['a missing audio segment', (pkg) => void pkg.files.delete('audio/seg_001.m4s'), ['SEGMENT_MISSING']],
    ['a missing init segment', (pkg) => void pkg.files.delete('720p/init.mp4'), ['INIT_SEGMENT_MISSING']],
    ['an empty init segment', (pkg) => void pkg.files.set('480p/init.mp4', 0), ['INIT_SEGMENT_EMPTY']],
    [
      // 6.5 rounds to 7 > 6; the tail shrinks by as much, so the total and the peak stay.
      'a segment longer than the target duration',
      (pkg) => {
        edit720p(pkg, '#EXTINF:6.000000,\nseg_002', '#EXTINF:6.500000,\nseg_002');
        edit720p(pkg, '#EXTINF:3.500000,', '#EXTINF:3.000000,');
      },
      ['SEGMENT_TOO_LONG'],
    ],
    [
      'a segment of 6.49 s under a target of 6 (rounds to 6)',
      (pkg) => {
        edit720p(pkg, '#EXTINF:6.000000,\nseg_002', '#EXTINF:6.490000,\nseg_002');
        edit720p(pkg, '#EXTINF:3.500000,', '#EXTINF:3.010000,');
      },
      [],
    ],
    [
      'a total 0.6 s short of the source',
      (pkg) => edit720p(pkg, '#EXTINF:3.500000,', '#EXTINF:2.900000,'),
      ['DURATION_MISMATCH'],
    ],
    [
      'a total 0.4 s short of the source',
      (pkg) => edit720p(pkg, '#EXTINF:3.500000,', '#EXTINF:3.100000,'),
      [],
    ],
    // 720p peak: 3 Mb/s video + 128 kb/s audio = 3 128 000 bit/s.
    [
      'BANDWIDTH one bit below the peak',
      (pkg) => set720pAttribute(pkg, 'BANDWIDTH', '3127999'),
      ['BANDWIDTH_BELOW_PEAK'],
    ],
    ['BANDWIDTH 10 % above the peak', (pkg) => set720pAttribute(pkg, 'BANDWIDTH', '3440800'), []],
    [
      'BANDWIDTH more than 10 % above the peak',
      (pkg) => set720pAttribute(pkg, 'BANDWIDTH', '3440801'),
      ['BANDWIDTH_ABOVE_PEAK'],
    ],
    // 720p average: 48.5 Mb / 21.5 s + 128 kb/s = 2 383 813.95 bit/s; ±10 %: 2 145 432.56 .. 2 622 195.35
    ['AVERAGE-BANDWIDTH 10 % above', (pkg) => set720pAttribute(pkg, 'AVERAGE-BANDWIDTH', '2622196'), []],
    [
      'AVERAGE-BANDWIDTH more than 10 % above',
      (pkg) => set720pAttribute(pkg, 'AVERAGE-BANDWIDTH', '2622197'),
      ['AVERAGE_BANDWIDTH_OFF'],
    ],
    ['AVERAGE-BANDWIDTH 10 % below', (pkg) => set720pAttribute(pkg, 'AVERAGE-BANDWIDTH', '2145432'), []],
    [
      'AVERAGE-BANDWIDTH more than 10 % below',
      (pkg) => set720pAttribute(pkg, 'AVERAGE-BANDWIDTH', '2145431'),
      ['AVERAGE_BANDWIDTH_OFF'],
    ],
    [
      'no AVERAGE-BANDWIDTH',
      (pkg) => set720pAttribute(pkg, 'AVERAGE-BANDWIDTH', undefined),
      ['AVERAGE_BANDWIDTH_MISSING'],
    ],
    [
      'CODECS other than ffprobe reads',
      (pkg) => {
        pkg.expectedCodecs = { ...pkg.expectedCodecs, '720p/index.m3u8': 'avc1.640028,mp4a.40.2' };
      },
      ['CODECS_MISMATCH'],
    ],
    [
      'CODECS without the audio codec',
      (pkg) => set720pAttribute(pkg, 'CODECS', '"avc1.64001f"'),
      ['CODECS_MISMATCH'],
    ],
    [
      'a variant that was not encoded',
      (pkg) => {
        pkg.expectedCodecs = { '720p/index.m3u8': 'avc1.64001f,mp4a.40.2' };
      },
      ['VARIANT_UNEXPECTED'],
    ],
  ])('%s', (_name, damage, expected) => {
    const pkg = goodPackage();
    damage(pkg);
    expect(codes(pkg)).toEqual(expected);
  });
});

describe('validateHlsPackage: findings a person can follow', () => {
  it('names the playlist, line and URI', () => {
    const pkg = goodPackage();
    pkg.files.delete('720p/seg_002.m4s');
    pkg.files.delete('720p/init.mp4');
    expect(validateHlsPackage(pkg).map((finding) => finding.message)).toEqual([
      '720p/index.m3u8 line 6: init segment init.mp4 does not exist (looked for 720p/init.mp4).',
      '720p/index.m3u8 line 12: segment seg_002.m4s does not exist (looked for 720p/seg_002.m4s).',
    ]);
  });

  it('points BANDWIDTH and CODECS findings at the EXT-X-STREAM-INF line', () => {
    const pkg = goodPackage();
    set720pAttribute(pkg, 'BANDWIDTH', '3000000');
    pkg.expectedCodecs = { ...pkg.expectedCodecs, '720p/index.m3u8': 'avc1.640028,mp4a.40.2' };
    // master: 1 EXTM3U, 2 VERSION, 3 INDEPENDENT-SEGMENTS, 4 MEDIA, 5-6 480p, 7-8 720p
    expect(validateHlsPackage(pkg).map((finding) => finding.message)).toEqual([
      'master.m3u8 line 7: BANDWIDTH=3000000 of 720p/index.m3u8 is below its measured peak of 3128000 bit/s.',
      'master.m3u8 line 7: variant 720p/index.m3u8 declares CODECS="avc1.64001f,mp4a.40.2", ffprobe reads "avc1.640028,mp4a.40.2".',
    ]);
  });

  it('reports a too-long segment with our sentence, silently, and restores the parser options', () => {
    const errors = vi.spyOn(console, 'error');
    const before = getOptions();
    const pkg = goodPackage();
    edit720p(pkg, '#EXTINF:6.000000,\nseg_002', '#EXTINF:6.500000,\nseg_002');
    edit720p(pkg, '#EXTINF:3.500000,', '#EXTINF:3.000000,');
    expect(validateHlsPackage(pkg).map((finding) => finding.message)).toEqual([
      '720p/index.m3u8 line 12: segment seg_002.m4s lasts 6.500 s, longer than EXT-X-TARGETDURATION:6 (rounded to the nearest second).',
    ]);
    expect(errors).not.toHaveBeenCalled();
    expect(getOptions().strictMode ?? false).toBe(before.strictMode ?? false);
    expect(getOptions().silent ?? false).toBe(before.silent ?? false);
  });

  it('quotes the parser for what it refuses', () => {
    const pkg = goodPackage();
    edit720p(pkg, '#EXTM3U\n', '');
    expect(validateHlsPackage(pkg).map((finding) => finding.message)).toEqual([
      '720p/index.m3u8: cannot be parsed: Invalid Playlist : The EXTM3U tag MUST be the first line..',
    ]);
  });
});

describe('resolvePackageUri', () => {
  it.each([
    ['master.m3u8', '720p/index.m3u8', '720p/index.m3u8'],
    ['720p/index.m3u8', 'seg_000.m4s', '720p/seg_000.m4s'],
    ['720p/index.m3u8', '../audio/seg_000.m4s', 'audio/seg_000.m4s'],
    ['720p/index.m3u8', '/shared/init.mp4', 'shared/init.mp4'],
    ['720p/index.m3u8', 'seg%20000.m4s', '720p/seg 000.m4s'],
    ['720p/index.m3u8', 'https://cdn.example/seg.m4s', 'https://cdn.example/seg.m4s'],
  ])('%s + %s -> %s', (referrer, uri, expected) => {
    expect(resolvePackageUri(referrer, uri)).toBe(expected);
  });
});
