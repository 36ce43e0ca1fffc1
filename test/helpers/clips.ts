import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../src/media/ffmpeg.js';

// The acceptance clip set of issue 5 (video on demand), generated with ffmpeg 5.1 from testsrc2,
// sine and anoisesrc: every kind of upload the pipeline must end `ready` with a sensible ladder or
// `failed` with a reason a person understands. Clips are as short and small as the case allows
// (two shared cores). Every generator checks its own output with ffprobe, so a clip that silently
// lost what it is for (a rotation, the 5.1 layout, the PQ transfer...) fails the test that uses it
// instead of making it pass for the wrong reason.

const RUN = { timeoutMs: 180_000 };

/** What the pipeline should make of a clip. */
export type ClipExpectation =
  | {
      status: 'ready';
      kind: 'video-and-audio' | 'video-only' | 'audio-only';
      /** Displayed size (rotation applied) of the source; null without video. */
      display: { width: number; height: number } | null;
      /** The source's frame rate (the average for a variable-rate clip); null without video. */
      frameRateFps: number | null;
      /** Duration of the source, seconds. */
      durationSec: number;
      /** Channels of the source's audio; null without audio. */
      audioChannels: number | null;
    }
  | {
      status: 'failed';
      /** What the asset's `error` must say, in words a person understands. */
      reason: RegExp;
    };

export interface Clip {
  /** File name, also the upload's name: `h264-1080p60-5.1.mp4`. */
  name: string;
  path: string;
  /** Content type to upload with. */
  contentType: string;
  /** One sentence: what the clip is and why it is in the set. */
  what: string;
  expect: ClipExpectation;
}

interface ProbedStream {
  codec_type?: string;
  codec_name?: string;
  profile?: string;
  width?: number;
  height?: number;
  pix_fmt?: string;
  color_transfer?: string;
  avg_frame_rate?: string;
  r_frame_rate?: string;
  nb_frames?: string;
  channels?: number;
  channel_layout?: string;
  side_data_list?: { side_data_type?: string; rotation?: number }[];
}

interface Probed {
  streams: ProbedStream[];
  format: { format_name?: string; duration?: string };
}

async function ffmpeg(...args: string[]): Promise<void> {
  await run('ffmpeg', ['-hide_banner', '-v', 'error', '-nostdin', '-y', ...args], RUN);
}

async function probe(path: string): Promise<Probed> {
  const { stdout } = await run(
    'ffprobe',
    ['-v', 'error', '-of', 'json', '-show_format', '-show_streams', `file:${path}`],
    RUN,
  );
  const parsed = JSON.parse(stdout) as Partial<Probed>;
  return { streams: parsed.streams ?? [], format: parsed.format ?? {} };
}

function rate(text: string | undefined): number {
  const [num, den] = (text ?? '').split('/').map(Number);
  return num !== undefined && den ? num / den : Number.NaN;
}

/** Throws naming the clip when `ok` is false: the generator did not make what it claims. */
function ensure(ok: boolean, clip: string, what: string, probed: unknown): void {
  if (!ok) throw new Error(`clip ${clip}: ${what}; ffprobe says ${JSON.stringify(probed)}`);
}

function only(probed: Probed, type: 'video' | 'audio'): ProbedStream[] {
  return probed.streams.filter((s) => s.codec_type === type);
}

const lavfi = (graph: string) => ['-f', 'lavfi', '-i', graph];
const testsrc2 = (size: string, fps: number, seconds: number) =>
  lavfi(`testsrc2=size=${size}:rate=${fps}:duration=${seconds}`);
const sine = (seconds: number, frequency = 440, sampleRate = 48_000) =>
  lavfi(`sine=frequency=${frequency}:sample_rate=${sampleRate}:duration=${seconds}`);
// Keyframes only where the encoder's defaults put them: the pipeline must not rely on the source's GOP.
const x264 = ['-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p'];

/**
 * 2 s of 1920x1080 at 60 fps, H.264, with 5.1 AAC (six distinct tones, so a downmix is audible).
 * Two seconds, so that 1 s segments give every rung, the 60 and the 30 fps ones, two keyframes to
 * line up.
 */
export async function h264Surround1080p60(dir: string): Promise<Clip> {
  const name = 'h264-1080p60-5.1.mp4';
  const path = join(dir, name);
  const seconds = 2;
  const tones = [440, 550, 660, 110, 770, 880].flatMap((f) => sine(seconds, f));
  await ffmpeg(
    ...testsrc2('1920x1080', 60, seconds),
    ...tones,
    '-filter_complex',
    // join keeps the six inputs apart as FL, FR, FC, LFE, BL, BR: a real 5.1 layout.
    '[1:a][2:a][3:a][4:a][5:a][6:a]join=inputs=6:channel_layout=5.1[a]',
    ...['-map', '0:v', '-map', '[a]'],
    ...x264,
    ...['-c:a', 'aac', '-b:a', '384k'],
    path,
  );
  const p = await probe(path);
  const [v] = only(p, 'video');
  const [a] = only(p, 'audio');
  ensure(
    v?.codec_name === 'h264' && v.width === 1920 && v.height === 1080 && rate(v.avg_frame_rate) === 60,
    name,
    'expected H.264 1920x1080 at 60 fps',
    v,
  );
  ensure(a?.channels === 6, name, 'expected 6 audio channels', a);
  return {
    name,
    path,
    contentType: 'video/mp4',
    what: '1080p60 H.264 with 5.1 AAC: the everyday high-end upload; rungs at 60 fps above 480p, a stereo downmix',
    expect: {
      status: 'ready',
      kind: 'video-and-audio',
      display: { width: 1920, height: 1080 },
      frameRateFps: 60,
      durationSec: Number(p.format.duration),
      audioChannels: 6,
    },
  };
}

/**
 * 0.75 s (18 frames at 24 fps) of 3840x2160 HEVC Main 10 with PQ (SMPTE 2084) and BT.2020: an
 * HDR10-style camera file. Not shorter: a clip of 0.5 s or less makes ffmpeg 5.1's hls muxer write
 * EXT-X-TARGETDURATION:0 (the one-frame clip covers that case), and this clip is here for the tone map.
 */
export async function hevcHdrPq2160p(dir: string): Promise<Clip> {
  const name = 'hevc-2160p-pq.mp4';
  const path = join(dir, name);
  const seconds = 0.75;
  await ffmpeg(
    ...testsrc2('3840x2160', 24, seconds),
    ...sine(seconds),
    ...['-c:v', 'libx265', '-preset', 'ultrafast', '-x265-params', 'log-level=error'],
    ...['-pix_fmt', 'yuv420p10le', '-color_primaries', 'bt2020', '-color_trc', 'smpte2084'],
    ...['-colorspace', 'bt2020nc', '-tag:v', 'hvc1'],
    ...['-c:a', 'aac', '-shortest'],
    path,
  );
  const p = await probe(path);
  const [v] = only(p, 'video');
  ensure(
    v?.codec_name === 'hevc' &&
      v.width === 3840 &&
      v.height === 2160 &&
      v.pix_fmt === 'yuv420p10le' &&
      v.color_transfer === 'smpte2084',
    name,
    'expected HEVC 3840x2160 yuv420p10le with the smpte2084 transfer',
    v,
  );
  return {
    name,
    path,
    contentType: 'video/mp4',
    what: '4K HEVC 10-bit HDR (PQ): tone-mapped to SDR, no rung above 1080p with the default settings',
    expect: {
      status: 'ready',
      kind: 'video-and-audio',
      display: { width: 3840, height: 2160 },
      frameRateFps: 24,
      durationSec: Number(p.format.duration),
      audioChannels: 1,
    },
  };
}

/**
 * 1 s of portrait video as phones store it: 1920x1080 coded frames plus a display matrix turning
 * them by 90 degrees, so a player shows 1080x1920.
 */
export async function rotatedPortrait1080p(dir: string): Promise<Clip> {
  const name = 'portrait-1080x1920-rotated.mp4';
  const path = join(dir, name);
  const landscape = join(dir, 'portrait-source-landscape.mp4');
  const seconds = 1;
  await ffmpeg(...testsrc2('1920x1080', 30, seconds), ...sine(seconds), ...x264, '-c:a', 'aac', landscape);
  // ffmpeg 5.1 has no -display_rotation, and drops the `rotate` override when it encodes; with
  // stream copy the mp4 muxer writes it as a display matrix (checked below).
  await ffmpeg('-i', landscape, '-c', 'copy', '-metadata:s:v:0', 'rotate=90', path);
  const p = await probe(path);
  const [v] = only(p, 'video');
  const matrix = v?.side_data_list?.find((d) => d.side_data_type === 'Display Matrix');
  ensure(
    v?.width === 1920 && v.height === 1080 && Math.abs(matrix?.rotation ?? 0) === 90,
    name,
    'expected 1920x1080 coded frames with a display matrix rotation of 90 degrees',
    v,
  );
  return {
    name,
    path,
    contentType: 'video/mp4',
    what: 'portrait 1080x1920 stored as landscape frames + display-matrix rotation: rungs must be portrait-shaped',
    expect: {
      status: 'ready',
      kind: 'video-and-audio',
      display: { width: 1080, height: 1920 },
      frameRateFps: 30,
      durationSec: Number(p.format.duration),
      audioChannels: 1,
    },
  };
}

/** 1 s of 320x180 VP9 with Opus in WebM: smaller than the smallest standard rung. */
export async function vp9Tiny(dir: string): Promise<Clip> {
  const name = 'vp9-320x180.webm';
  const path = join(dir, name);
  const seconds = 1;
  await ffmpeg(
    ...testsrc2('320x180', 30, seconds),
    ...sine(seconds),
    ...['-c:v', 'libvpx-vp9', '-deadline', 'realtime', '-cpu-used', '8'],
    ...['-c:a', 'libopus'],
    path,
  );
  const p = await probe(path);
  const [v] = only(p, 'video');
  const [a] = only(p, 'audio');
  ensure(
    v?.codec_name === 'vp9' && v.width === 320 && v.height === 180 && a?.codec_name === 'opus',
    name,
    'expected VP9 320x180 with Opus audio',
    p.streams,
  );
  ensure(p.format.format_name?.includes('webm') === true, name, 'expected a WebM container', p.format);
  return {
    name,
    path,
    contentType: 'video/webm',
    what: '320x180 VP9 WebM: below the smallest standard rung, so one small rung at its own size',
    expect: {
      status: 'ready',
      kind: 'video-and-audio',
      display: { width: 320, height: 180 },
      frameRateFps: 30,
      durationSec: Number(p.format.duration),
      audioChannels: 1,
    },
  };
}

/**
 * A phone clip that slowed down in the dark: 854x480 on a 1/30 s time base, frames 0-19 one
 * thirtieth of a second apart, frames 20-29 one fifteenth (30 frames over 4/3 s, about 22.5 fps on
 * average), with AAC audio.
 */
export async function variableFrameRatePhone(dir: string): Promise<Clip> {
  const name = 'vfr-phone.mp4';
  const path = join(dir, name);
  const frames = 30;
  const seconds = 20 / 30 + 10 / 15;
  await ffmpeg(
    ...testsrc2('854x480', 30, frames / 30),
    ...sine(seconds),
    '-vf',
    "setpts='if(lt(N,20),N/30,2/3+(N-20)/15)/TB'",
    // Keep the timestamps as set above: no frame duplicated or dropped to a constant rate.
    ...['-fps_mode', 'vfr'],
    ...x264,
    ...['-c:a', 'aac'],
    path,
  );
  const p = await probe(path);
  const [v] = only(p, 'video');
  const avg = rate(v?.avg_frame_rate);
  const base = rate(v?.r_frame_rate);
  ensure(
    v?.width === 854 && Number(v.nb_frames) === frames && Math.abs(avg - base) / base > 0.01,
    name,
    `expected ${frames} frames with an average frame rate other than the base rate (variable)`,
    v,
  );
  ensure(
    Math.abs(Number(p.format.duration) - seconds) < 0.05,
    name,
    `expected ${seconds} s of audio and video`,
    p.format,
  );
  return {
    name,
    path,
    contentType: 'video/mp4',
    what: 'variable-frame-rate phone clip (30 then 15 fps): rungs get one constant frame rate',
    expect: {
      status: 'ready',
      kind: 'video-and-audio',
      display: { width: 854, height: 480 },
      frameRateFps: avg,
      durationSec: Number(p.format.duration),
      audioChannels: 1,
    },
  };
}

/** 1 s of 854x480 H.264 with no audio stream at all (a screen capture). */
export async function silentVideo(dir: string): Promise<Clip> {
  const name = 'no-audio-480p.mp4';
  const path = join(dir, name);
  const seconds = 1;
  await ffmpeg(...testsrc2('854x480', 30, seconds), ...x264, '-an', path);
  const p = await probe(path);
  ensure(
    only(p, 'audio').length === 0 && only(p, 'video').length === 1,
    name,
    'expected one video stream and no audio',
    p.streams,
  );
  return {
    name,
    path,
    contentType: 'video/mp4',
    what: 'video without audio: a video-only ladder, no audio group',
    expect: {
      status: 'ready',
      kind: 'video-only',
      display: { width: 854, height: 480 },
      frameRateFps: 30,
      durationSec: Number(p.format.duration),
      audioChannels: null,
    },
  };
}

/** 1 s of a stereo 440 Hz tone as 16-bit PCM WAV. */
export async function wavTone(dir: string): Promise<Clip> {
  const name = 'tone-stereo.wav';
  const path = join(dir, name);
  const seconds = 1;
  await ffmpeg(...sine(seconds), '-ac', '2', '-c:a', 'pcm_s16le', path);
  const p = await probe(path);
  const [a] = only(p, 'audio');
  ensure(
    a?.codec_name === 'pcm_s16le' && a.channels === 2 && p.streams.length === 1,
    name,
    'expected one stereo PCM stream',
    p.streams,
  );
  return {
    name,
    path,
    contentType: 'audio/wav',
    what: 'audio-only WAV: an HLS package of one AAC rendition, no video rungs',
    expect: {
      status: 'ready',
      kind: 'audio-only',
      display: null,
      frameRateFps: null,
      durationSec: Number(p.format.duration),
      audioChannels: 2,
    },
  };
}

/** 1 s of mono pink noise as 44.1 kHz MP3 (another sample rate and channel count than the WAV). */
export async function mp3Noise(dir: string): Promise<Clip> {
  const name = 'noise-mono.mp3';
  const path = join(dir, name);
  const seconds = 1;
  await ffmpeg(
    ...lavfi(`anoisesrc=color=pink:sample_rate=44100:amplitude=0.3:duration=${seconds}`),
    ...['-c:a', 'libmp3lame', '-b:a', '128k'],
    path,
  );
  const p = await probe(path);
  const [a] = only(p, 'audio');
  ensure(
    a?.codec_name === 'mp3' && a.channels === 1 && p.streams.length === 1,
    name,
    'expected one mono MP3 stream',
    p.streams,
  );
  return {
    name,
    path,
    contentType: 'audio/mpeg',
    what: 'audio-only MP3 (mono, 44.1 kHz): an HLS package of one stereo AAC rendition, no video rungs',
    expect: {
      status: 'ready',
      kind: 'audio-only',
      display: null,
      frameRateFps: null,
      // MP3 carries encoder delay and padding: the container says a little more than 1 s.
      durationSec: Number(p.format.duration),
      audioChannels: 1,
    },
  };
}

/**
 * A video of exactly one frame (640x360, 1/30 s). The planner has a rule for it (only the top rung,
 * see src/domain/ladder.ts): it is a valid video a player can show, so it must end `ready`.
 */
export async function oneFrame(dir: string): Promise<Clip> {
  const name = 'one-frame.mp4';
  const path = join(dir, name);
  await ffmpeg(...testsrc2('640x360', 30, 1), '-frames:v', '1', ...x264, path);
  const p = await probe(path);
  const [v] = only(p, 'video');
  ensure(Number(v?.nb_frames) === 1, name, 'expected exactly one frame', v);
  return {
    name,
    path,
    contentType: 'video/mp4',
    what: 'a one-frame video: one rung (the planner rule for a single frame), a poster, one storyboard tile',
    expect: {
      status: 'ready',
      kind: 'video-only',
      display: { width: 640, height: 360 },
      frameRateFps: 30,
      durationSec: Number(p.format.duration),
      audioChannels: null,
    },
  };
}

/**
 * An interrupted upload: a 2 s 640x360 MP4 with AAC written with +faststart (the index first, so
 * the half that is left still probes as 2 s), then cut in half. Only decoding finds the damage.
 */
export async function truncatedFaststart(dir: string): Promise<Clip> {
  const name = 'truncated-faststart.mp4';
  const path = join(dir, name);
  const whole = join(dir, 'truncated-source-whole.mp4');
  const seconds = 2;
  await ffmpeg(
    ...testsrc2('640x360', 30, seconds),
    ...sine(seconds),
    ...x264,
    ...['-c:a', 'aac', '-movflags', '+faststart'],
    whole,
  );
  const bytes = await readFile(whole);
  await writeFile(path, bytes.subarray(0, Math.floor(bytes.length / 2)));
  const p = await probe(path);
  ensure(
    Math.abs(Number(p.format.duration) - seconds) < 0.05 && only(p, 'video').length === 1,
    name,
    `expected the cut file to still probe as ${seconds} s of video`,
    p,
  );
  // ffmpeg exits 0 here: the damage shows only as errors on stderr.
  const { stderr } = await run(
    'ffmpeg',
    ['-hide_banner', '-v', 'error', '-nostdin', '-i', `file:${path}`, '-f', 'null', '-'],
    RUN,
  );
  ensure(stderr.trim() !== '', name, 'expected a full decode to report errors', stderr);
  return {
    name,
    path,
    contentType: 'video/mp4',
    what: 'a truncated MP4 (+faststart, cut in half): probes fine, only a decode finds it; must fail',
    expect: {
      status: 'failed',
      reason: /truncat|incomplete|cut off|cut short|damaged|corrupt|ends early|ends before/i,
    },
  };
}

/** Every clip of the acceptance set, generated one after another (two cores) into `dir` (created). */
export async function acceptanceClips(dir: string): Promise<Clip[]> {
  await mkdir(dir, { recursive: true });
  const makers = [
    h264Surround1080p60,
    hevcHdrPq2160p,
    rotatedPortrait1080p,
    vp9Tiny,
    variableFrameRatePhone,
    silentVideo,
    wavTone,
    mp3Noise,
    oneFrame,
    truncatedFaststart,
  ];
  const clips: Clip[] = [];
  for (const make of makers) clips.push(await make(dir));
  return clips;
}
