import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_LADDER_SETTINGS,
  type LadderPlan,
  type LadderSource,
  planLadder,
} from '../../src/domain/ladder.js';
import { run } from '../../src/media/ffmpeg.js';
import { encodeLadder, type LadderOutputLayout } from '../../src/media/ladder-encode.js';
import { ladderSourceFromProbe } from '../../src/media/ladder-source.js';
import { progressiveRung, writeProgressiveMp4 } from '../../src/media/progressive-mp4.js';
import { probeVideo } from '../../src/media/video-probe.js';
import { tempDir } from '../helpers/tmp.js';

// progressiveRung on planned ladders; writeProgressiveMp4 on real ladders (ffmpeg 5.1) from 2 s
// 320x180 clips with and without audio, read back with ffprobe and by walking the MP4's boxes.

const RUN = { timeoutMs: 120_000 };
const CLIP_SEC = 2;
const FPS = 30;

function source(widthPx: number, heightPx: number, fps = 30): LadderSource {
  return {
    durationSec: 60,
    video: {
      widthPx,
      heightPx,
      frameRateFps: fps,
      variableFrameRate: false,
      dynamicRange: 'sdr',
      bitDepth: 8,
    },
    audio: { channels: 2 },
  };
}

describe('progressiveRung', () => {
  it.each([
    { name: '1080p source: the 720p rung', source: source(1920, 1080), rung: 'h264-720p' },
    { name: '4K source with 2160p on: still 720p', source: source(3840, 2160), rung: 'h264-720p' },
    { name: 'portrait 1080x1920: the rung 720 px wide', source: source(1080, 1920), rung: 'h264-720p' },
    { name: '480p source: its top rung', source: source(854, 480), rung: 'h264-480p' },
    // The planner keeps 768p (the source size) and drops 720p as too close to it: 480p is the
    // largest at most 720 px.
    { name: '1366x768 (768p, then 480p): 480p, not 768p', source: source(1366, 768), rung: 'h264-480p' },
  ])('$name', ({ source: s, rung }) => {
    const plan = planLadder(s, { ...DEFAULT_LADDER_SETTINGS, enable2160p: true, codecs: ['h264', 'hevc'] });
    expect(progressiveRung(plan)?.id).toBe(rung);
  });

  it('takes the smallest H.264 rung when every rung is larger than 720p', () => {
    const plan = planLadder(source(1920, 1080), { ...DEFAULT_LADDER_SETTINGS, codecs: ['h264', 'av1'] });
    const large: LadderPlan = { ...plan, rungs: plan.rungs.filter((r) => r.heightPx > 720) };
    expect(large.rungs.map((r) => r.id)).toEqual(['h264-1080p', 'av1-1080p']);
    expect(progressiveRung(large)?.id).toBe('h264-1080p');
  });

  it('is null for an audio-only plan', () => {
    const plan = planLadder({ durationSec: 3, video: null, audio: { channels: 2 } });
    expect(progressiveRung(plan)).toBeNull();
  });
});

let dir: string;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('assetpipe-progressive-'));
});

afterAll(async () => {
  await cleanup?.();
});

interface Ladder {
  plan: LadderPlan;
  layout: LadderOutputLayout;
  outDir: string;
}

async function encodeClip(name: string, withAudio: boolean): Promise<Ladder> {
  const input = join(dir, `${name}.mp4`);
  await run(
    'ffmpeg',
    [
      ...['-hide_banner', '-v', 'error', '-y'],
      ...(withAudio
        ? ['-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:duration=${CLIP_SEC}`]
        : []),
      ...['-f', 'lavfi', '-i', `testsrc2=size=320x180:rate=${FPS}:duration=${CLIP_SEC}`],
      ...(withAudio ? ['-map', '1:v', '-map', '0:a', '-c:a', 'aac'] : []),
      ...['-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', input],
    ],
    RUN,
  );
  const probe = await probeVideo(input, RUN);
  const plan = planLadder(ladderSourceFromProbe(probe), {
    ...DEFAULT_LADDER_SETTINGS,
    minTotalBitrateBps: 228_000,
    segmentDurationSec: 1,
  });
  const outDir = join(dir, `${name}-out`);
  const layout = await encodeLadder(plan, {
    input,
    outDir,
    sourceFrameRateFps: probe.video!.frameRate,
    durationSec: probe.durationSec,
    ...RUN,
  });
  return { plan, layout, outDir };
}

/** The top-level boxes of an MP4 file, in order. */
function topLevelBoxes(bytes: Buffer): string[] {
  const types: string[] = [];
  for (let at = 0; at + 8 <= bytes.length; ) {
    let size = bytes.readUInt32BE(at);
    if (size === 1) size = Number(bytes.readBigUInt64BE(at + 8));
    else if (size === 0) size = bytes.length - at;
    types.push(bytes.toString('latin1', at + 4, at + 8));
    if (size < 8) break;
    at += size;
  }
  return types;
}

interface Probed {
  format: { start_time: string };
  streams: { codec_type: string; codec_name: string; start_time: string; duration: string; width?: number }[];
}

async function probe(path: string): Promise<Probed> {
  const { stdout } = await run(
    'ffprobe',
    [
      ...['-v', 'error', '-of', 'json'],
      ...['-show_entries', 'format=start_time:stream=codec_type,codec_name,start_time,duration,width'],
      path,
    ],
    RUN,
  );
  return JSON.parse(stdout) as Probed;
}

/** Sizes of the video packets, in decode order: equal lists mean the same coded frames. */
async function videoPacketSizes(path: string): Promise<number[]> {
  const { stdout } = await run(
    'ffprobe',
    ['-v', 'error', '-of', 'csv=p=0', '-select_streams', 'v:0', '-show_entries', 'packet=size', path],
    RUN,
  );
  return stdout.trim().split('\n').map(Number);
}

describe.each([
  { name: 'with-audio', withAudio: true },
  { name: 'video-only', withAudio: false },
])('writeProgressiveMp4 ($name)', ({ name, withAudio }) => {
  let ladder: Ladder;
  let mp4: string;

  beforeAll(async () => {
    ladder = await encodeClip(name, withAudio);
    mp4 = join(dir, `${name}-download.mp4`);
    const rung = progressiveRung(ladder.plan);
    expect(rung?.id).toBe('h264-180p');
    await writeProgressiveMp4({
      outDir: ladder.outDir,
      layout: ladder.layout,
      rungId: rung!.id,
      outputPath: mp4,
      ...RUN,
    });
  }, 120_000);

  it('puts moov before mdat (faststart)', async () => {
    const boxes = topLevelBoxes(await readFile(mp4));
    expect(boxes[0]).toBe('ftyp');
    expect(boxes).toContain('mdat');
    expect(boxes.indexOf('moov')).toBeGreaterThan(-1);
    expect(boxes.indexOf('moov')).toBeLessThan(boxes.indexOf('mdat'));
    // One movie, not fragments: nothing a plain MP4 player would have to stitch.
    expect(boxes).not.toContain('moof');
  });

  it(`has the rung's video (copied, not re-encoded)${withAudio ? ' and the audio' : ', no audio'}, starting at 0`, async () => {
    const out = await probe(mp4);
    expect(out.streams.map((s) => `${s.codec_type} ${s.codec_name}`)).toEqual(
      withAudio ? ['video h264', 'audio aac'] : ['video h264'],
    );
    expect(Number(out.format.start_time)).toBe(0);
    for (const stream of out.streams) expect(Number(stream.start_time), stream.codec_type).toBe(0);
    const playlist = join(ladder.outDir, 'h264-180p', 'index.m3u8');
    expect(await videoPacketSizes(mp4)).toEqual(await videoPacketSizes(playlist));
  });

  it("lasts as long as the rung's media playlist, within one frame", async () => {
    const playlist = await readFile(join(ladder.outDir, 'h264-180p', 'index.m3u8'), 'utf8');
    const rungSec = [...playlist.matchAll(/^#EXTINF:([\d.]+),/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    expect(rungSec).toBeCloseTo(CLIP_SEC, 3);
    const video = (await probe(mp4)).streams.find((s) => s.codec_type === 'video')!;
    expect(Math.abs(Number(video.duration) - rungSec)).toBeLessThanOrEqual(1 / FPS);
  });

  it('decodes without an error', async () => {
    const { stderr } = await run(
      'ffmpeg',
      ['-hide_banner', '-v', 'error', '-i', mp4, '-map', '0', '-f', 'null', '-'],
      RUN,
    );
    expect(stderr).toBe('');
  });
});

describe('writeProgressiveMp4 refusals', () => {
  it('names the rung that is not in the ladder', async () => {
    await expect(
      writeProgressiveMp4({
        outDir: dir,
        layout: { rungs: [], audio: null },
        rungId: 'h264-720p',
        outputPath: join(dir, 'never.mp4'),
        ...RUN,
      }),
    ).rejects.toThrow(/rung h264-720p is not in the ladder \(no video rungs\)/);
  });
});
