import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { run, ToolError } from '../../src/media/ffmpeg.js';
import { probeRefusal, type VideoProbe } from '../../src/media/ffprobe-parse.js';
import { ffprobeArgs, probeVideo } from '../../src/media/video-probe.js';
import { tempDir } from '../helpers/tmp.js';

// Real ffprobe (Debian's 5.1) on tiny clips generated here with ffmpeg's testsrc2/sine: the
// acceptance clip set of issue 5, shrunk to 1 s and 320x180 so the whole file runs in seconds.

const RUN = { timeoutMs: 60_000 };

let dir: string;
let cleanup: () => Promise<void>;
const clip: Record<string, string> = {};

async function ffmpeg(...args: string[]): Promise<void> {
  await run('ffmpeg', ['-hide_banner', '-v', 'error', '-y', ...args], RUN);
}

const testsrc = (size: string, rate: number, seconds = 1) => [
  '-f',
  'lavfi',
  '-i',
  `testsrc2=size=${size}:rate=${rate}:duration=${seconds}`,
];
const sine = (seconds = 1) => [
  '-f',
  'lavfi',
  '-i',
  `sine=frequency=440:sample_rate=48000:duration=${seconds}`,
];
const x264 = ['-c:v', 'libx264', '-preset', 'veryfast', '-profile:v', 'high', '-pix_fmt', 'yuv420p'];
const x265hdr = (transfer: string) => [
  '-c:v',
  'libx265',
  '-preset',
  'ultrafast',
  '-x265-params',
  'log-level=error',
  '-pix_fmt',
  'yuv420p10le',
  '-color_primaries',
  'bt2020',
  '-color_trc',
  transfer,
  '-colorspace',
  'bt2020nc',
  '-tag:v',
  'hvc1',
];

async function make(name: string, build: (path: string) => Promise<void>): Promise<void> {
  const path = join(dir, name);
  await build(path);
  clip[name] = path;
}

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('assetpipe-video-probe-'));
  await make('h264-51.mp4', (p) =>
    ffmpeg(...testsrc('320x180', 60), ...sine(), '-ac', '6', ...x264, '-c:a', 'aac', '-shortest', p),
  );
  await make('hevc-pq.mp4', (p) => ffmpeg(...testsrc('320x180', 24), ...x265hdr('smpte2084'), p));
  await make('hevc-hlg.mp4', (p) => ffmpeg(...testsrc('320x180', 24), ...x265hdr('arib-std-b67'), p));
  // A phone stores portrait video as landscape frames plus a rotation. ffmpeg 5.1 has no
  // -display_rotation; its `rotate` metadata override is honoured when stream-copying (encoding
  // drops it), and is written as a display matrix ffprobe reports as rotation 90.
  const landscape = join(dir, 'landscape.mp4');
  await ffmpeg(...testsrc('320x180', 30), ...x264, landscape);
  await make('rotated.mp4', (p) => ffmpeg('-i', landscape, '-c', 'copy', '-metadata:s:v:0', 'rotate=90', p));
  await make('vp9.webm', (p) =>
    ffmpeg(
      ...testsrc('320x180', 30),
      ...sine(),
      '-c:v',
      'libvpx-vp9',
      '-deadline',
      'realtime',
      '-cpu-used',
      '8',
      '-c:a',
      'libopus',
      p,
    ),
  );
  // Frames 0-29 one thirtieth of a second apart, frames 30-59 one fifteenth: 60 frames over 3 s on a
  // 30 fps time base, the shape of a phone clip that slowed down in the dark.
  await make('vfr.mp4', (p) =>
    ffmpeg(
      ...testsrc('320x180', 30, 2),
      '-vf',
      "setpts='if(lt(N,30),N/30,1+(N-30)/15)/TB'",
      '-fps_mode',
      'vfr',
      ...x264,
      p,
    ),
  );
  await make('silent.mp4', (p) => ffmpeg(...testsrc('320x180', 30), ...x264, '-an', p));
  await make('tone.wav', (p) => ffmpeg(...sine(), '-ac', '2', '-c:a', 'pcm_s16le', p));
  const cover = join(dir, 'cover.png');
  await ffmpeg(...testsrc('64x64', 1), '-frames:v', '1', cover);
  await make('tone-with-cover.mp3', (p) =>
    ffmpeg(
      ...sine(),
      '-i',
      cover,
      '-map',
      '0',
      '-map',
      '1',
      '-c:a',
      'libmp3lame',
      '-c:v',
      'copy',
      '-disposition:v:0',
      'attached_pic',
      p,
    ),
  );
  await make('one-frame.mp4', (p) => ffmpeg(...testsrc('320x180', 30), '-frames:v', '1', ...x264, p));
  // ffmpeg writes an MP4's index (moov) after the media unless asked for faststart: half a file
  // is what an interrupted upload of a camera or screen recording looks like.
  await make('truncated.mp4', async (p) => {
    const whole = await readFile(clip['h264-51.mp4']!);
    await writeFile(p, whole.subarray(0, Math.floor(whole.length / 2)));
  });
  await make('notes.txt', (p) => writeFile(p, 'Meeting notes\nnot a video at all\n'));
  // An HLS playlist under a video name (upload sniffing refuses text; this is ffprobe's own answer).
  await make('playlist.mp4', (p) =>
    writeFile(
      p,
      '#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nhttp://127.0.0.1:9/segment.ts\n#EXT-X-ENDLIST\n',
    ),
  );
});
afterAll(async () => cleanup());

async function probe(name: string): Promise<VideoProbe> {
  const path = clip[name];
  if (!path) throw new Error(`no clip ${name}`);
  return probeVideo(path, RUN);
}

async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected the probe to fail');
    },
    (err: unknown) => err,
  );
}

describe('probeVideo on real files', () => {
  it('H.264 60 fps with 5.1 AAC', async () => {
    const p = await probe('h264-51.mp4');
    expect(p.formatName).toBe('mov,mp4,m4a,3gp,3g2,mj2');
    expect(p.durationSec).toBeCloseTo(1, 1);
    expect(p.bitRate).toBeGreaterThan(0);
    expect(p.video).toMatchObject({
      codec: 'h264',
      profile: 'High',
      pixelFormat: 'yuv420p',
      bitDepth: 8,
      width: 320,
      height: 180,
      displayWidth: 320,
      displayHeight: 180,
      rotation: 0,
      avgFrameRate: 60,
      baseFrameRate: 60,
      frameRate: 60,
      variableFrameRate: false,
      frameCount: 60,
      interlaced: false,
      hdr: null,
      wideGamut: false,
    });
    expect(p.video?.bitRate).toBeGreaterThan(0);
    expect(p.audio).toMatchObject({
      codec: 'aac',
      profile: 'LC',
      channels: 6,
      channelLayout: '5.1',
      sampleRate: 48_000,
    });
    expect(p.audio?.bitRate).toBeGreaterThan(0);
    expect(p.decodable).toEqual({ video: true, audio: true });
    expect(probeRefusal(p, { maxDurationSec: 60 })).toBeNull();
  });

  it.each([
    { name: 'hevc-pq.mp4', transfer: 'smpte2084', hdr: 'pq' },
    { name: 'hevc-hlg.mp4', transfer: 'arib-std-b67', hdr: 'hlg' },
  ])('HEVC 10-bit HDR: $name', async ({ name, transfer, hdr }) => {
    const p = await probe(name);
    expect(p.video).toMatchObject({
      codec: 'hevc',
      profile: 'Main 10',
      pixelFormat: 'yuv420p10le',
      bitDepth: 10,
      width: 320,
      height: 180,
      frameRate: 24,
      hdr,
      wideGamut: true,
      color: { primaries: 'bt2020', transfer, matrix: 'bt2020nc', range: 'tv' },
    });
    expect(p.audio).toBeNull();
  });

  it('portrait from a rotated landscape: displayed size is what ffmpeg itself shows', async () => {
    const p = await probe('rotated.mp4');
    expect(p.video).toMatchObject({
      width: 320,
      height: 180,
      rotation: 90,
      displayWidth: 180,
      displayHeight: 320,
    });
    // ffmpeg's autorotate applies the same display matrix when it decodes: the frame it writes must
    // have the size the probe says a player shows.
    const frame = join(dir, 'rotated-frame.png');
    await ffmpeg('-i', clip['rotated.mp4']!, '-frames:v', '1', frame);
    const { width, height } = await sharp(frame).metadata();
    expect([width, height]).toEqual([p.video?.displayWidth, p.video?.displayHeight]);
  });

  it('VP9 + Opus WebM: no per-stream bit rate or frame count in Matroska', async () => {
    const p = await probe('vp9.webm');
    expect(p.formatName).toBe('matroska,webm');
    expect(p.video).toMatchObject({
      codec: 'vp9',
      profile: 'Profile 0',
      bitDepth: 8,
      width: 320,
      height: 180,
      frameRate: 30,
      frameCount: null,
      bitRate: null,
    });
    expect(p.audio).toMatchObject({ codec: 'opus', channels: 1, sampleRate: 48_000 });
    expect(p.durationSec).toBeCloseTo(1, 1);
  });

  it('variable frame rate', async () => {
    const p = await probe('vfr.mp4');
    expect(p.video?.baseFrameRate).toBe(30);
    expect(p.video?.avgFrameRate).toBeGreaterThan(15);
    expect(p.video?.avgFrameRate).toBeLessThan(25);
    expect(p.video?.variableFrameRate).toBe(true);
    expect(p.video?.frameCount).toBe(60);
    expect(p.durationSec).toBeCloseTo(3, 0);
  });

  it('video without audio is valid', async () => {
    const p = await probe('silent.mp4');
    expect(p.decodable).toEqual({ video: true, audio: false });
    expect(p.audio).toBeNull();
    expect(probeRefusal(p, { maxDurationSec: 60 })).toBeNull();
  });

  it('audio-only WAV is valid', async () => {
    const p = await probe('tone.wav');
    expect(p.formatName).toBe('wav');
    expect(p.video).toBeNull();
    // ffprobe 5.1 states no layout for a plain PCM WAV.
    expect(p.audio).toMatchObject({
      codec: 'pcm_s16le',
      channels: 2,
      channelLayout: null,
      sampleRate: 48_000,
    });
    expect(p.audio?.bitRate).toBe(48_000 * 2 * 16);
    expect(p.durationSec).toBeCloseTo(1, 2);
    expect(probeRefusal(p, { maxDurationSec: 60 })).toBeNull();
  });

  it('audio-only MP3 whose cover art ffprobe lists as a video stream', async () => {
    // The cover really is there, as a video stream marked attached_pic: otherwise this test proves nothing.
    const raw = await run('ffprobe', ffprobeArgs(clip['tone-with-cover.mp3']!), RUN);
    const streams = (JSON.parse(raw.stdout) as { streams: Array<Record<string, unknown>> }).streams;
    expect(
      streams.map((s) => [s.codec_type, (s.disposition as { attached_pic: number }).attached_pic]),
    ).toEqual([
      ['audio', 0],
      ['video', 1],
    ]);

    const p = await probe('tone-with-cover.mp3');
    expect(p.formatName).toBe('mp3');
    expect(p.video).toBeNull();
    expect(p.undecodable).toEqual([]);
    expect(p.audio).toMatchObject({ codec: 'mp3', channels: 1, channelLayout: 'mono' });
    expect(probeRefusal(p, { maxDurationSec: 60 })).toBeNull();
  });

  it('a one-frame video is valid', async () => {
    const p = await probe('one-frame.mp4');
    expect(p.video).toMatchObject({ codec: 'h264', frameCount: 1, width: 320, height: 180 });
    expect(p.durationSec).toBeGreaterThan(0);
    expect(p.durationSec).toBeLessThan(0.1);
    expect(probeRefusal(p, { maxDurationSec: 60 })).toBeNull();
  });

  it('refuses a video longer than the project allows', async () => {
    const refusal = probeRefusal(await probe('h264-51.mp4'), { maxDurationSec: 0.5 });
    expect(refusal?.code).toBe('DURATION_TOO_LONG');
    expect(refusal?.message).toBe(
      'The file lasts 1 s; this project accepts at most 0.5 s (limit maxVideoDurationSec).',
    );
  });

  it.each([
    {
      name: 'truncated.mp4',
      message: /^The MP4\/MOV file is incomplete: its index \(the "moov atom"\) is missing/,
    },
    {
      name: 'notes.txt',
      message: /^The file is not a video or audio file: no known format matches its contents\.$/,
    },
    {
      name: 'playlist.mp4',
      message: /^The file refers to other files or network addresses, which are not read\.$/,
    },
  ])('refuses $name with a reason a person understands', async ({ name, message }) => {
    const err = await failure(probe(name));
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('MEDIA_INVALID');
    expect((err as AppError).message).toMatch(message);
    expect((err as AppError).message).not.toContain(dir);
    expect((err as AppError).cause).toBeInstanceOf(ToolError);
  });

  it('a missing source or an aborted probe is the server’s problem, not a refusal', async () => {
    const missing = await failure(probeVideo(join(dir, 'gone.mp4'), RUN));
    expect(missing).toBeInstanceOf(ToolError);
    expect((missing as ToolError).exitCode).toBe(1);

    const aborted = await failure(probeVideo(clip['h264-51.mp4']!, { ...RUN, signal: AbortSignal.abort() }));
    expect(aborted).toBeInstanceOf(ToolError);
    expect((aborted as ToolError).exitCode).toBeNull();
  });
});
