import { describe, expect, it } from 'vitest';
import { DEFAULT_LADDER_SETTINGS, type LadderPlan, type LadderSource, planLadder } from '../domain/ladder.js';
import { type LadderEncodeOptions, ladderEncodeArgs, ladderOutputLayout } from './ladder-encode.js';

const SETTINGS = { ...DEFAULT_LADDER_SETTINGS, segmentDurationSec: 6 };

function plan720p60(channels: number | null): LadderPlan {
  const source: LadderSource = {
    durationSec: 60,
    video: {
      widthPx: 1280,
      heightPx: 720,
      frameRateFps: 60,
      variableFrameRate: false,
      dynamicRange: 'sdr',
      bitDepth: 8,
    },
    audio: channels === null ? null : { channels },
  };
  return planLadder(source, SETTINGS);
}

const OPTIONS: LadderEncodeOptions = {
  input: '/src/in.mov',
  outDir: '/out/v1',
  sourceFrameRateFps: 60,
};

const HEAD = ['-hide_banner', '-v', 'error', '-nostdin', '-y', '-progress', 'pipe:1', '-nostats'];

const rungArgs = (i: number, maxrate: number, gop: number, preset = 'veryfast') => [
  '-map',
  `[v${i}]`,
  `-c:v:${i}`,
  'libx264',
  `-preset:v:${i}`,
  preset,
  `-profile:v:${i}`,
  'high',
  `-pix_fmt:v:${i}`,
  'yuv420p',
  `-crf:v:${i}`,
  '23',
  `-maxrate:v:${i}`,
  String(maxrate),
  `-bufsize:v:${i}`,
  String(maxrate * 2),
  `-g:v:${i}`,
  String(gop),
  `-keyint_min:v:${i}`,
  String(gop),
];

const SHARED_VIDEO = ['-sc_threshold:v', '0', '-force_key_frames:v', 'expr:gte(t,n_forced*6)'];

const hlsTail = (variants: string, init = 'init_%v.mp4') => [
  '-avoid_negative_ts',
  'disabled',
  '-map_metadata',
  '-1',
  '-map_chapters',
  '-1',
  '-f',
  'hls',
  '-hls_time',
  '6',
  '-hls_playlist_type',
  'vod',
  '-hls_segment_type',
  'fmp4',
  '-hls_flags',
  'independent_segments',
  '-hls_fmp4_init_filename',
  init,
  '-hls_segment_filename',
  '/out/v1/%v/seg-%05d.m4s',
  '-var_stream_map',
  variants,
  '/out/v1/%v/index.m3u8',
];

describe('ladderEncodeArgs', () => {
  it('builds one command for a 3-rung ladder with audio: split, per-rung scale/fps, shared audio', () => {
    const plan = plan720p60(6);
    expect(plan.rungs.map((r) => `${r.id} ${r.widthPx}x${r.heightPx}@${r.frameRate}`)).toEqual([
      'h264-720p 1280x720@60/1',
      'h264-480p 854x480@30/1',
      'h264-360p 640x360@30/1',
    ]);
    const [r720, r480, r360] = plan.rungs.map((r) => r.maxrateBps);
    expect(ladderEncodeArgs(plan, OPTIONS)).toEqual([
      ...HEAD,
      '-i',
      'file:/src/in.mov',
      '-filter_complex',
      '[0:v:0]split=3[s0][s1][s2];' +
        '[s0]scale=1280:720,setsar=1[v0];' +
        '[s1]fps=30/1,scale=854:480,setsar=1[v1];' +
        '[s2]fps=30/1,scale=640:360,setsar=1[v2]',
      ...rungArgs(0, r720!, 360),
      ...rungArgs(1, r480!, 180),
      ...rungArgs(2, r360!, 180),
      ...SHARED_VIDEO,
      '-map',
      '0:a:0',
      '-c:a',
      'aac',
      '-b:a',
      '128000',
      '-ac',
      '2',
      '-af',
      'asetpts=PTS+1024/SR/TB',
      ...hlsTail('v:0,name:h264-720p v:1,name:h264-480p v:2,name:h264-360p a:0,name:audio'),
    ]);
  });

  it('leaves the audio out of a video-only ladder and maps the probed stream indexes', () => {
    const plan = plan720p60(null);
    const [r720, r480, r360] = plan.rungs.map((r) => r.maxrateBps);
    expect(ladderEncodeArgs(plan, { ...OPTIONS, videoStreamIndex: 2, preset: 'fast' })).toEqual([
      ...HEAD,
      '-i',
      'file:/src/in.mov',
      '-filter_complex',
      '[0:2]split=3[s0][s1][s2];' +
        '[s0]scale=1280:720,setsar=1[v0];' +
        '[s1]fps=30/1,scale=854:480,setsar=1[v1];' +
        '[s2]fps=30/1,scale=640:360,setsar=1[v2]',
      ...rungArgs(0, r720!, 360, 'fast'),
      ...rungArgs(1, r480!, 180, 'fast'),
      ...rungArgs(2, r360!, 180, 'fast'),
      ...SHARED_VIDEO,
      ...hlsTail('v:0,name:h264-720p v:1,name:h264-480p v:2,name:h264-360p'),
    ]);
  });

  it('gives every rung an fps filter when the source rate is variable or unknown', () => {
    const args = ladderEncodeArgs(plan720p60(2), { ...OPTIONS, sourceFrameRateFps: null });
    expect(args[args.indexOf('-filter_complex') + 1]).toBe(
      '[0:v:0]split=3[s0][s1][s2];' +
        '[s0]fps=60/1,scale=1280:720,setsar=1[v0];' +
        '[s1]fps=30/1,scale=854:480,setsar=1[v1];' +
        '[s2]fps=30/1,scale=640:360,setsar=1[v2]',
    );
  });

  it('tone-maps an HDR source once, before the split', () => {
    const plan = { ...plan720p60(2), toneMapFrom: 'hlg' as const };
    const args = ladderEncodeArgs(plan, OPTIONS);
    expect(args[args.indexOf('-filter_complex') + 1]).toBe(
      '[0:v:0]zscale=tin=arib-std-b67:t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,' +
        'tonemap=hable:desat=0,zscale=t=bt709:m=bt709:r=tv,format=yuv420p,split=3[s0][s1][s2];' +
        '[s0]scale=1280:720,setsar=1[v0];' +
        '[s1]fps=30/1,scale=854:480,setsar=1[v1];' +
        '[s2]fps=30/1,scale=640:360,setsar=1[v2]',
    );
  });

  it('needs no split for a single rung', () => {
    const plan = { ...plan720p60(2) };
    plan.rungs = plan.rungs.slice(0, 1);
    const args = ladderEncodeArgs(plan, OPTIONS);
    expect(args[args.indexOf('-filter_complex') + 1]).toBe('[0:v:0]scale=1280:720,setsar=1[v0]');
    expect(args.at(-2)).toBe('v:0,name:h264-720p a:0,name:audio');
  });

  it('encodes only the audio of an audio-only plan', () => {
    const plan = planLadder({ durationSec: 60, video: null, audio: { channels: 2 } }, SETTINGS);
    expect(ladderEncodeArgs(plan, { ...OPTIONS, audioStreamIndex: 1 })).toEqual([
      ...HEAD,
      '-i',
      'file:/src/in.mov',
      '-map',
      '0:1',
      '-c:a',
      'aac',
      '-b:a',
      '128000',
      '-ac',
      '2',
      '-af',
      'asetpts=PTS+1024/SR/TB',
      // ffmpeg 5.1 expands %v only with several variants: one variant's init file is named outright.
      ...hlsTail('a:0,name:audio', 'init_audio.mp4'),
    ]);
  });

  it('encodes HEVC rungs with libx265 and refuses what it cannot encode', () => {
    const hevc = planLadder(
      {
        durationSec: 60,
        video: {
          widthPx: 640,
          heightPx: 360,
          frameRateFps: 30,
          variableFrameRate: false,
          dynamicRange: 'sdr',
          bitDepth: 8,
        },
        audio: null,
      },
      { ...SETTINGS, codecs: ['h264', 'hevc'] },
    );
    const args = ladderEncodeArgs(hevc, OPTIONS);
    // HEVC rungs: libx265, hvc1 (Apple's sample entry), forced keyframes as IDR, no scene cuts.
    const at = args.indexOf('libx265');
    expect(args.slice(at - 1, at + 1)).toEqual(['-c:v:1', 'libx265']);
    expect(args).toEqual(expect.arrayContaining(['-tag:v:1', 'hvc1', '-forced-idr:v:1', '1']));
    expect(args[args.indexOf('-x265-params:v:1') + 1]).toMatch(/scenecut=0:open-gop=0/);
    expect(() => ladderEncodeArgs(plan720p60(2), { ...OPTIONS, outDir: '/out/50%' })).toThrow(
      /must not contain "%"/,
    );
    const empty = { ...plan720p60(null), rungs: [] };
    expect(() => ladderEncodeArgs(empty, OPTIONS)).toThrow(/nothing to encode/);
  });
});

describe('ladderOutputLayout', () => {
  it('names one directory and media playlist per rung and one for the audio', () => {
    expect(ladderOutputLayout(plan720p60(2), '/out/v1')).toEqual({
      rungs: [
        {
          name: 'h264-720p',
          rungId: 'h264-720p',
          playlist: 'h264-720p/index.m3u8',
          dir: '/out/v1/h264-720p',
        },
        {
          name: 'h264-480p',
          rungId: 'h264-480p',
          playlist: 'h264-480p/index.m3u8',
          dir: '/out/v1/h264-480p',
        },
        {
          name: 'h264-360p',
          rungId: 'h264-360p',
          playlist: 'h264-360p/index.m3u8',
          dir: '/out/v1/h264-360p',
        },
      ],
      audio: { name: 'audio', playlist: 'audio/index.m3u8', dir: '/out/v1/audio' },
    });
    expect(ladderOutputLayout(plan720p60(null), '/out/v1').audio).toBeNull();
  });
});
