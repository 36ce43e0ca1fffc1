import { describe, expect, it } from 'vitest';
import { AppError } from '../errors.js';
import {
  bitDepthOfPixelFormat,
  ffprobeFailure,
  humanDuration,
  parseFfprobeOutput,
  probeRefusal,
  sourceDamage,
  type VideoProbe,
} from './ffprobe-parse.js';

// Fragments shaped like ffprobe 5.1's `-show_format -show_streams -print_format json` output
// (numbers as strings where ffprobe prints strings), trimmed to the fields that matter.

function video(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    index: 0,
    codec_name: 'h264',
    profile: 'High',
    codec_type: 'video',
    width: 1920,
    height: 1080,
    sample_aspect_ratio: '1:1',
    pix_fmt: 'yuv420p',
    field_order: 'progressive',
    r_frame_rate: '60/1',
    avg_frame_rate: '60/1',
    duration: '10.000000',
    bit_rate: '8000000',
    bits_per_raw_sample: '8',
    nb_frames: '600',
    disposition: { default: 1, attached_pic: 0 },
    ...extra,
  };
}

function audio(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    index: 1,
    codec_name: 'aac',
    profile: 'LC',
    codec_type: 'audio',
    sample_fmt: 'fltp',
    sample_rate: '48000',
    channels: 6,
    channel_layout: '5.1',
    r_frame_rate: '0/0',
    avg_frame_rate: '0/0',
    duration: '10.000000',
    bit_rate: '384000',
    disposition: { default: 1, attached_pic: 0 },
    ...extra,
  };
}

function output(streams: unknown[], format: Record<string, unknown> = {}): unknown {
  return {
    streams,
    format: { format_name: 'mov,mp4,m4a,3gp,3g2,mj2', duration: '10.000000', bit_rate: '8400000', ...format },
  };
}

function onlyVideo(stream: Record<string, unknown>) {
  const probe = parseFfprobeOutput(output([stream]));
  expect(probe.video).not.toBeNull();
  return probe.video!;
}

describe('parseFfprobeOutput', () => {
  it('reads container, video and audio of an H.264 + 5.1 AAC MP4', () => {
    expect(parseFfprobeOutput(output([video(), audio()]))).toEqual({
      formatName: 'mov,mp4,m4a,3gp,3g2,mj2',
      durationSec: 10,
      bitRate: 8_400_000,
      video: {
        index: 0,
        codec: 'h264',
        profile: 'High',
        pixelFormat: 'yuv420p',
        bitDepth: 8,
        width: 1920,
        height: 1080,
        displayWidth: 1920,
        displayHeight: 1080,
        rotation: 0,
        avgFrameRate: 60,
        baseFrameRate: 60,
        frameRate: 60,
        variableFrameRate: false,
        frameCount: 600,
        interlaced: false,
        color: { primaries: null, transfer: null, matrix: null, range: null },
        hdr: null,
        wideGamut: false,
        bitRate: 8_000_000,
      },
      audio: {
        index: 1,
        codec: 'aac',
        profile: 'LC',
        channels: 6,
        channelLayout: '5.1',
        sampleRate: 48_000,
        bitRate: 384_000,
      },
      decodable: { video: true, audio: true },
      undecodable: [],
    } satisfies VideoProbe);
  });

  it('does not take cover art or timed thumbnails for the video', () => {
    const cover = video({ index: 1, codec_name: 'mjpeg', width: 600, height: 600, pix_fmt: 'yuvj420p' });
    const probe = parseFfprobeOutput(
      output(
        [
          audio({ index: 0, codec_name: 'mp3', channels: 2, channel_layout: 'stereo' }),
          { ...cover, disposition: { default: 0, attached_pic: 1 } },
          { ...cover, index: 2, disposition: { default: 0, timed_thumbnails: 1 } },
        ],
        { format_name: 'mp3' },
      ),
    );
    expect(probe.video).toBeNull();
    expect(probe.audio?.codec).toBe('mp3');
    expect(probe.decodable).toEqual({ video: false, audio: true });
    expect(probe.undecodable).toEqual([]);
  });

  it.each([
    {
      name: 'the stream marked default wins over an earlier one',
      streams: [
        video({ index: 0, width: 640, height: 360, disposition: { default: 0 } }),
        video({ index: 1, disposition: { default: 1 } }),
      ],
      index: 1,
    },
    {
      name: 'with no default, the first',
      streams: [
        video({ index: 0, width: 640, height: 360, disposition: { default: 0 } }),
        video({ index: 1, disposition: { default: 0 } }),
      ],
      index: 0,
    },
    {
      name: 'an undecodable default is passed over for a decodable stream',
      streams: [
        video({ index: 0, codec_name: 'prores_raw', pix_fmt: undefined, disposition: { default: 1 } }),
        video({ index: 1, disposition: { default: 0 } }),
      ],
      index: 1,
    },
  ])('chooses the video stream: $name', ({ streams, index }) => {
    expect(parseFfprobeOutput(output(streams)).video?.index).toBe(index);
  });

  it('chooses the default audio stream (a commentary track is not default)', () => {
    const probe = parseFfprobeOutput(
      output([
        video(),
        audio({ index: 1, channels: 2, channel_layout: 'stereo', disposition: { default: 0 } }),
        audio({ index: 2, disposition: { default: 1 } }),
      ]),
    );
    expect(probe.audio?.index).toBe(2);
    expect(probe.audio?.channels).toBe(6);
  });

  const displayMatrix = (rotation: unknown) => ({
    side_data_list: [{ side_data_type: 'Display Matrix', displaymatrix: '...', rotation }],
  });

  it.each([
    { name: 'no rotation', extra: {}, rotation: 0, display: [1920, 1080] },
    { name: 'display matrix 90 (ccw)', extra: displayMatrix(90), rotation: 90, display: [1080, 1920] },
    { name: 'display matrix -90', extra: displayMatrix(-90), rotation: 270, display: [1080, 1920] },
    { name: 'display matrix 180', extra: displayMatrix(180), rotation: 180, display: [1920, 1080] },
    { name: 'display matrix -180', extra: displayMatrix(-180), rotation: 180, display: [1920, 1080] },
    { name: 'display matrix 89.99', extra: displayMatrix(89.99), rotation: 90, display: [1080, 1920] },
    // The legacy tag counts clockwise: a phone's portrait "rotate=90" is the matrix's -90.
    { name: 'legacy tag rotate=90', extra: { tags: { rotate: '90' } }, rotation: 270, display: [1080, 1920] },
    {
      name: 'legacy tag rotate=270',
      extra: { tags: { rotate: '270' } },
      rotation: 90,
      display: [1080, 1920],
    },
    {
      name: 'legacy tag rotate=180',
      extra: { tags: { rotate: '180' } },
      rotation: 180,
      display: [1920, 1080],
    },
    {
      name: 'the display matrix wins over the tag',
      extra: { ...displayMatrix(180), tags: { rotate: '90' } },
      rotation: 180,
      display: [1920, 1080],
    },
    {
      name: 'other side data is not a rotation',
      extra: { side_data_list: [{ side_data_type: 'Stereo 3D', type: '2D' }] },
      rotation: 0,
      display: [1920, 1080],
    },
    {
      name: 'anamorphic SAR 4:3 widens the displayed picture',
      extra: { width: 1440, sample_aspect_ratio: '4:3' },
      rotation: 0,
      display: [1920, 1080],
    },
    {
      name: 'anamorphic and turned',
      extra: { width: 1440, sample_aspect_ratio: '4:3', ...displayMatrix(90) },
      rotation: 90,
      display: [1080, 1920],
    },
    {
      name: 'unknown SAR 0:1 counts as square',
      extra: { sample_aspect_ratio: '0:1' },
      rotation: 0,
      display: [1920, 1080],
    },
  ])('rotation and displayed size: $name', ({ extra, rotation, display }) => {
    const v = onlyVideo(video(extra));
    expect(v.rotation).toBe(rotation);
    expect([v.displayWidth, v.displayHeight]).toEqual(display);
    // The stored size is reported as stored.
    expect([v.width, v.height]).toEqual([video(extra).width, 1080]);
  });

  it.each([
    { name: 'constant 60', r: '60/1', avg: '60/1', frameRate: 60, vfr: false },
    // NTSC rates labelled as the round rate differ by 0.1 %: still constant.
    { name: '29.97 on a 30 base', r: '30/1', avg: '30000/1001', frameRate: 30000 / 1001, vfr: false },
    { name: 'phone-style variable', r: '30/1', avg: '1800/89', frameRate: 1800 / 89, vfr: true },
    { name: 'average unknown', r: '25/1', avg: '0/0', frameRate: 25, vfr: false },
    { name: 'both unknown', r: '0/0', avg: 'N/A', frameRate: null, vfr: false },
  ])('frame rate: $name', ({ r, avg, frameRate, vfr }) => {
    const v = onlyVideo(video({ r_frame_rate: r, avg_frame_rate: avg }));
    expect(v.frameRate).toBe(frameRate);
    expect(v.variableFrameRate).toBe(vfr);
  });

  it.each([
    { name: 'HDR10 (PQ, BT.2020)', transfer: 'smpte2084', primaries: 'bt2020', hdr: 'pq', wideGamut: true },
    { name: 'HLG', transfer: 'arib-std-b67', primaries: 'bt2020', hdr: 'hlg', wideGamut: true },
    { name: 'SDR BT.709', transfer: 'bt709', primaries: 'bt709', hdr: null, wideGamut: false },
    { name: 'wide-gamut SDR', transfer: 'bt2020-10', primaries: 'bt2020', hdr: null, wideGamut: true },
    { name: 'untagged', transfer: undefined, primaries: undefined, hdr: null, wideGamut: false },
  ])('colour: $name', ({ transfer, primaries, hdr, wideGamut }) => {
    const v = onlyVideo(
      video({
        color_transfer: transfer,
        color_primaries: primaries,
        color_space: 'bt2020nc',
        color_range: 'tv',
      }),
    );
    expect(v.hdr).toBe(hdr);
    expect(v.wideGamut).toBe(wideGamut);
    expect(v.color).toEqual({
      primaries: primaries ?? null,
      transfer: transfer ?? null,
      matrix: 'bt2020nc',
      range: 'tv',
    });
  });

  it.each([
    {
      name: 'bits_per_raw_sample',
      extra: { bits_per_raw_sample: '10', pix_fmt: 'yuv420p10le' },
      bitDepth: 10,
    },
    {
      name: 'HEVC Main 10 states no raw bits',
      extra: { bits_per_raw_sample: undefined, pix_fmt: 'yuv420p10le' },
      bitDepth: 10,
    },
    { name: 'VP9 8-bit', extra: { bits_per_raw_sample: undefined, pix_fmt: 'yuv420p' }, bitDepth: 8 },
    {
      name: 'unknown pixel format',
      extra: { bits_per_raw_sample: undefined, pix_fmt: 'bayer_rggb16le' },
      bitDepth: null,
    },
  ])('bit depth: $name', ({ extra, bitDepth }) => {
    expect(onlyVideo(video(extra)).bitDepth).toBe(bitDepth);
  });

  it.each([
    ['yuv420p', 8],
    ['yuvj420p', 8],
    ['yuv444p', 8],
    ['nv12', 8],
    ['gbrp', 8],
    ['yuv420p10le', 10],
    ['yuv422p10be', 10],
    ['yuv444p12le', 12],
    ['yuva444p16le', 16],
    ['gbrp10le', 10],
    ['gray10le', 10],
    ['p010le', 10],
    ['p016le', 16],
    ['rgb48le', 16],
    ['bgra64be', 16],
    ['pal8', null],
  ])('bitDepthOfPixelFormat(%s) = %s', (pixelFormat, depth) => {
    expect(bitDepthOfPixelFormat(pixelFormat)).toBe(depth);
  });

  it.each([
    { name: 'absent (WebM)', nbFrames: undefined, count: null },
    { name: 'N/A', nbFrames: 'N/A', count: null },
    { name: 'one frame', nbFrames: '1', count: 1 },
  ])('frame count: $name', ({ nbFrames, count }) => {
    expect(onlyVideo(video({ nb_frames: nbFrames })).frameCount).toBe(count);
  });

  it.each([
    { fieldOrder: 'progressive', interlaced: false },
    { fieldOrder: 'tt', interlaced: true },
    { fieldOrder: 'bt', interlaced: true },
    { fieldOrder: undefined, interlaced: false },
  ])('field order $fieldOrder -> interlaced $interlaced', ({ fieldOrder, interlaced }) => {
    expect(onlyVideo(video({ field_order: fieldOrder })).interlaced).toBe(interlaced);
  });

  it('lists streams it cannot decode and keeps them out of video/audio', () => {
    const probe = parseFfprobeOutput(
      output([
        video({ index: 0, codec_name: 'none', pix_fmt: undefined, width: 0, height: 0 }),
        audio({ index: 1, codec_name: 'truehd', sample_rate: '0', channels: 0 }),
        { index: 2, codec_type: 'data', codec_tag_string: 'tmcd' },
        { index: 3, codec_type: 'subtitle', codec_name: 'mov_text' },
      ]),
    );
    expect(probe.video).toBeNull();
    expect(probe.audio).toBeNull();
    expect(probe.decodable).toEqual({ video: false, audio: false });
    expect(probe.undecodable).toEqual([
      { index: 0, type: 'video', codec: null },
      { index: 1, type: 'audio', codec: 'truehd' },
    ]);
  });

  it('reads streams without bit rates (WebM) and the audio layout when unknown (WAV)', () => {
    const probe = parseFfprobeOutput(
      output(
        [
          video({ codec_name: 'vp9', bit_rate: undefined, profile: 'Profile 0' }),
          audio({
            codec_name: 'pcm_s16le',
            profile: undefined,
            channels: 2,
            channel_layout: undefined,
            bit_rate: undefined,
          }),
        ],
        { format_name: 'matroska,webm' },
      ),
    );
    expect(probe.video?.bitRate).toBeNull();
    expect(probe.audio).toMatchObject({ profile: null, channelLayout: null, bitRate: null, channels: 2 });
  });

  it.each([
    { name: 'format duration', format: { duration: '12.5' }, streams: [video()], duration: 12.5 },
    {
      name: 'longest stream when the format does not say',
      format: { duration: 'N/A' },
      streams: [video({ duration: '9.9' }), audio({ duration: '10.02' })],
      duration: 10.02,
    },
    {
      name: 'unknown',
      format: { duration: undefined },
      streams: [video({ duration: undefined })],
      duration: null,
    },
  ])('duration: $name', ({ format, streams, duration }) => {
    expect(parseFfprobeOutput(output(streams, format)).durationSec).toBe(duration);
  });

  it.each([null, 'text', 42, [], { streams: 'nope', format: 7 }, { streams: [null, 'x'] }])(
    'reads malformed output %j as a file with nothing in it',
    (value) => {
      expect(parseFfprobeOutput(value)).toEqual({
        formatName: 'unknown',
        durationSec: null,
        bitRate: null,
        video: null,
        audio: null,
        decodable: { video: false, audio: false },
        undecodable: [],
      });
    },
  );
});

describe('probeRefusal', () => {
  const base = parseFfprobeOutput(output([video(), audio()]));
  const audioOnly = parseFfprobeOutput(output([audio({ index: 0 })], { format_name: 'wav' }));
  const oneFrame = parseFfprobeOutput(
    output([video({ nb_frames: '1', duration: '0.033333' })], { duration: '0.034000' }),
  );
  const nothing = parseFfprobeOutput(output([{ index: 0, codec_type: 'data' }]));
  const undecodable = parseFfprobeOutput(
    output([video({ codec_name: 'prores_raw', pix_fmt: undefined }), audio({ codec_name: undefined })]),
  );
  const noDuration = { ...base, durationSec: null };

  it.each([
    { name: 'video with audio', probe: base, max: null },
    { name: 'video within the limit', probe: base, max: 60 },
    { name: 'exactly the limit', probe: base, max: 10 },
    { name: 'audio only', probe: audioOnly, max: 60 },
    { name: 'one frame', probe: oneFrame, max: 60 },
    { name: 'unknown duration without a limit', probe: noDuration, max: null },
  ])('accepts $name', ({ probe, max }) => {
    expect(probeRefusal(probe, { maxDurationSec: max })).toBeNull();
  });

  it.each([
    {
      name: 'no video or audio stream',
      probe: nothing,
      max: null,
      code: 'MEDIA_INVALID',
      message: 'The file contains no video or audio stream.',
    },
    {
      name: 'streams that cannot be decoded',
      probe: undecodable,
      max: null,
      code: 'MEDIA_INVALID',
      message:
        "None of the file's streams can be decoded here: video stream #0 (prores_raw), audio stream #1 (unknown codec). Export it with a common codec such as H.264 or AAC.",
    },
    {
      name: 'longer than the limit',
      probe: { ...base, durationSec: 3725.5 },
      max: 3600,
      code: 'DURATION_TOO_LONG',
      message:
        'The file lasts 1 h 2 min 5.5 s; this project accepts at most 1 h (limit maxVideoDurationSec).',
    },
    {
      name: 'a limit that cannot be checked',
      probe: noDuration,
      max: 600,
      code: 'MEDIA_INVALID',
      message:
        "The file does not say how long it lasts, so the project's limit of 10 min cannot be checked. Re-export it as MP4 or WebM.",
    },
  ])('refuses $name', ({ probe, max, code, message }) => {
    const refusal = probeRefusal(probe, { maxDurationSec: max });
    expect(refusal).toBeInstanceOf(AppError);
    expect(refusal?.code).toBe(code);
    expect(refusal?.status).toBe(422);
    expect(refusal?.message).toBe(message);
  });
});

describe('ffprobeFailure', () => {
  const input = 'file:/var/lib/assetpipe/tmp/src-1234';

  it.each([
    {
      name: 'an MP4 cut before its index',
      stderr: `[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d5c0b8a240] moov atom not found\n${input}: Invalid data found when processing input\n`,
      reason: /^The MP4\/MOV file is incomplete: its index \(the "moov atom"\) is missing/,
    },
    {
      name: 'a damaged WebM header',
      stderr: `[matroska,webm @ 0x5581] EBML header parsing failed\n${input}: Invalid data found when processing input\n`,
      reason: /^The WebM\/Matroska file is damaged/,
    },
    {
      name: 'a text file',
      stderr: `${input}: Invalid data found when processing input\n`,
      reason: /^The file is not a video or audio file: no known format matches its contents\.$/,
    },
    {
      name: 'a playlist pointing at the network',
      stderr: `[hls @ 0x5581] Protocol 'http' not on whitelist 'file'!\n${input}: Invalid data found when processing input\n`,
      reason: /^The file refers to other files or network addresses/,
    },
    {
      name: 'anything else, with its last line and without the path',
      stderr: `[mpegts @ 0x5581aa] something odd\n${input}: Operation not permitted\n`,
      reason: /^The file cannot be read as video or audio \(Operation not permitted\)\.$/,
    },
    { name: 'no stderr at all', stderr: '', reason: /^The file cannot be read as video or audio\.$/ },
  ])('refuses $name', ({ stderr, reason }) => {
    const cause = new Error('ffprobe exited with code 1');
    const refusal = ffprobeFailure(stderr, input, cause);
    expect(refusal?.code).toBe('MEDIA_INVALID');
    expect(refusal?.message).toMatch(reason);
    expect(refusal?.message).not.toContain('/var/lib');
    expect(refusal?.cause).toBe(cause);
  });

  it.each([`${input}: No such file or directory\n`, `${input}: Permission denied\n`])(
    'leaves server-side failures to the caller: %s',
    (stderr) => {
      expect(ffprobeFailure(stderr, input)).toBeNull();
    },
  );
});

describe('humanDuration', () => {
  it.each([
    [0, '0 s'],
    [0.04, '0 s'],
    [0.05, '0.1 s'],
    [59, '59 s'],
    [60, '1 min'],
    [600, '10 min'],
    [3600, '1 h'],
    [3600.4, '1 h 0.4 s'],
    [3725.5, '1 h 2 min 5.5 s'],
    [7260, '2 h 1 min'],
  ])('%s s -> %s', (seconds, expected) => {
    expect(humanDuration(seconds)).toBe(expected);
  });
});

describe('sourceDamage', () => {
  it('reads a truncated source from the errors ffmpeg prints while it still exits 0', () => {
    const stderr =
      '[h264 @ 0x55d1] Invalid NAL unit size (1234 > 567).\n[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d0] stream 0, offset 0x2f1c: partial file\n';
    const refusal = sourceDamage(stderr);
    expect(refusal).toBeInstanceOf(AppError);
    expect(refusal?.code).toBe('MEDIA_INVALID');
    expect(refusal?.message).toMatch(/truncated/);
  });

  it('finds nothing in a clean run or in concealed glitches of a complete file', () => {
    expect(sourceDamage('')).toBeNull();
    expect(sourceDamage('[h264 @ 0x55d1] error while decoding MB 3 4, bytestream -5\n')).toBeNull();
  });
});
