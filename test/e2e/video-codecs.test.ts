import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkPackage, downloadPackage } from '../helpers/ladder-checks.js';
import { tempDir } from '../helpers/tmp.js';
import {
  makeTestClip,
  startVideoServer,
  uploadReadyVideo,
  type VideoRecord,
  type VideoServer,
} from '../helpers/video-server.js';

// ASSETPIPE_VIDEO_CODECS=h264,hevc,av1 through the whole pipeline: the plan adds HEVC and AV1 rungs
// at the H.264 sizes, one ffmpeg encodes all of them with the same keyframes, the master lists
// every codec's variants (hvc1 / av01 CODECS), the MPD has an adaptation set per codec, and the
// progressive download stays H.264. A 2 s 640x360 clip with 1 s segments keeps it small.

let dir: string;
let source: string;
let cleanup: (() => Promise<void>) | undefined;
let server: VideoServer | undefined;
let baseUrl: string;
let asset: VideoRecord;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('assetpipe-video-codecs-'));
  source = join(dir, 'clip.mp4');
  await makeTestClip(source, { size: '640x360', rate: '30', durationSec: 2 });
  server = await startVideoServer({
    ASSETPIPE_VIDEO_CODECS: 'h264,hevc,av1',
    ASSETPIPE_VIDEO_SEGMENT_SEC: '1',
    ASSETPIPE_VIDEO_ABR: 'fixed',
    ASSETPIPE_VIDEO_MIN_BITRATE: '228000',
    ASSETPIPE_WORKERS: '1',
  });
  baseUrl = server.baseUrl;
  asset = await uploadReadyVideo(baseUrl, source);
}, 420_000);

afterAll(async () => {
  await server?.close();
  await cleanup?.();
});

describe('HEVC and AV1 rungs by configuration', () => {
  it('plans and publishes H.264, HEVC and AV1 rungs at the same sizes', () => {
    const rungs = asset.ladder?.rungs ?? [];
    const byCodec = (codec: string) =>
      rungs.filter((r) => r.codec === codec).map((r) => `${r.width}x${r.height}`);
    expect(byCodec('h264').length).toBeGreaterThan(0);
    expect(byCodec('hevc')).toEqual(byCodec('h264'));
    expect(byCodec('av1')).toEqual(byCodec('h264'));
    expect(rungs.filter((r) => r.codec === 'hevc').every((r) => r.codecs?.startsWith('hvc1.'))).toBe(true);
    expect(rungs.filter((r) => r.codec === 'av1').every((r) => r.codecs?.startsWith('av01.'))).toBe(true);
  });

  it('passes every ladder check, with keyframes identical across all codecs', async () => {
    const local = join(dir, 'package');
    await downloadPackage({ baseUrl, masterUrl: asset.hls ?? '', dir: local });
    const report = await checkPackage({
      dir: local,
      source,
      rungs: asset.ladder?.rungs ?? [],
      audio: { codec: 'aac', channels: 2 },
    });
    expect(report.findings).toEqual([]);
    expect(new Set(report.renditions.map((r) => r.codec))).toEqual(new Set(['h264', 'hevc', 'av1', 'aac']));
  });

  it('writes an adaptation set per codec in the MPD and keeps the download H.264', async () => {
    const mpd = await (await fetch(new URL(asset.dash ?? '', baseUrl))).text();
    // One video adaptation set per codec (a player switches only within one) and the audio's.
    expect(mpd.match(/<AdaptationSet/g)).toHaveLength(4);
    expect(mpd).toMatch(/codecs="hvc1\./);
    expect(mpd).toMatch(/codecs="av01\./);
    const download = await fetch(new URL(asset.download ?? '', baseUrl));
    expect(download.status).toBe(200);
    const head = Buffer.from(await download.arrayBuffer())
      .subarray(0, 4096)
      .toString('latin1');
    expect(head).toContain('avc1');
  });
});
