import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AssetRecord, getJson, getRuns, type RunRecord, upload } from '../helpers/api.js';
import { ensureBuilt, ProcessGroup, type ServerHandle, waitFor } from '../helpers/cli.js';
import { acceptanceClips, type Clip } from '../helpers/clips.js';
import {
  checkPackage,
  checkPoster,
  checkStoryboard,
  downloadPackage,
  type Finding,
  type PackageReport,
  parseMaster,
} from '../helpers/ladder-checks.js';
import { tempDir } from '../helpers/tmp.js';

// The acceptance of issue 5 (video on demand), end to end through a real `assetpipe serve`: every
// clip of test/helpers/clips.ts is uploaded, processed by the real pipeline (probe -> plan ->
// encode -> package -> poster -> storyboard -> publish) and then judged from the outside, as a
// player and a person would: the published package is downloaded without an API key and checked
// with ffprobe, ffmpeg and sharp (test/helpers/ladder-checks.ts), the ladder on the record is
// compared with what the clip calls for, and a failed asset must say why in words a person
// understands. A failing test prints the asset's error and every run step with its output.

/** Generous: on two shared cores the 4K HDR tone map is the slow one. */
const PROCESSING_TIMEOUT_MS = 8 * 60_000;
const SEGMENT_SEC = 1;

interface LadderRung {
  id: string;
  codec: string;
  width: number;
  height: number;
  frameRate: number;
  crf: number;
  maxrateBps: number;
  bandwidth: number;
  averageBandwidth: number;
  codecs: string;
}

interface Ladder {
  kind: 'video-and-audio' | 'video-only' | 'audio-only';
  bitrateMode: string | null;
  complexityBpp: number | null;
  segmentDurationSec: number;
  rungs: LadderRung[];
  audio: { codec: string; channels: number; bitrateBps: number; downmixFromChannels: number | null } | null;
  reasons: string[];
}

/** The ready record's video-on-demand fields (see the seam in issue 5). */
interface MediaRecord extends AssetRecord {
  hls?: string | null;
  dash?: string | null;
  poster?: { jpeg: string; webp: string } | null;
  storyboard?: { vtt: string; sheets: string[] } | null;
  download?: string | null;
  ladder?: Ladder | null;
}

interface Outcome {
  upload: { status: number; body: unknown };
  record?: MediaRecord;
  runs?: RunRecord[];
  /** Why there is no final record (an upload refused, processing that never ended). */
  problem?: string;
}

const procs = new ProcessGroup();
let parent: { dir: string; cleanup: () => Promise<void> } | undefined;
let server: ServerHandle;
let clips: Clip[] = [];
const outcomes = new Map<string, Outcome>();

/** Everything known about a clip's asset, for failure messages. */
function explain(clip: Clip): string {
  const outcome = outcomes.get(clip.name);
  if (outcome === undefined) return `${clip.name}: not uploaded`;
  const lines = [`${clip.name} (${clip.what})`];
  if (outcome.problem) lines.push(`problem: ${outcome.problem}`);
  if (outcome.upload.status !== 201)
    lines.push(`upload: ${outcome.upload.status} ${JSON.stringify(outcome.upload.body)}`);
  const r = outcome.record;
  if (r) {
    lines.push(`status: ${r.status}; error: ${JSON.stringify(r.error)}; durationSec: ${r.durationSec}`);
    lines.push(`ladder: ${JSON.stringify(r.ladder ?? null)}`);
  }
  for (const run of outcome.runs ?? []) {
    lines.push(
      `run ${run.id}: ${run.status} after ${run.attempts} attempt(s); error: ${JSON.stringify(run.error)}`,
    );
    for (const step of run.steps as (RunRecord['steps'][number] & { output?: unknown })[]) {
      const output = JSON.stringify(step.output ?? null);
      lines.push(
        `  step ${step.name} #${step.attempt}: ${step.status}${step.error ? ` error: ${step.error}` : ''} output: ${output.length > 1500 ? `${output.slice(0, 1500)}...` : output}`,
      );
    }
  }
  return lines.join('\n');
}

const show = (clip: Clip, findings: readonly Finding[]) =>
  `${findings.map((f) => `[${f.check}] ${f.file}: ${f.message}`).join('\n')}\n---\n${explain(clip)}`;

beforeAll(
  async () => {
    await ensureBuilt();
    parent = await tempDir('assetpipe-e2e-video-');
    clips = await acceptanceClips(join(parent.dir, 'clips'));
    server = await procs.serve(join(parent.dir, 'data'), {
      // 1 s segments instead of the default 6: on clips of 1-2 s that is what gives the keyframe and
      // peak-bandwidth checks more than one segment to compare. Everything else is the default.
      env: { ASSETPIPE_VIDEO_SEGMENT_SEC: String(SEGMENT_SEC) },
    });

    for (const clip of clips) {
      const res = await upload(server.baseUrl, await readFile(clip.path), clip.name, {
        type: clip.contentType,
      });
      outcomes.set(clip.name, { upload: { status: res.status, body: res.body } });
    }
    // Every asset until it is no longer `processing` (or the time is up); one poll loop for all.
    const pending = new Map(
      clips.flatMap((clip) => {
        const body = outcomes.get(clip.name)!.upload.body as { id?: string };
        return typeof body?.id === 'string' ? [[clip.name, body.id] as const] : [];
      }),
    );
    await waitFor(
      async () => {
        for (const [name, id] of pending) {
          const res = await getJson<MediaRecord>(`${server.baseUrl}/v1/assets/${id}`);
          if (res.status === 200 && res.body.status !== 'processing') {
            outcomes.get(name)!.record = res.body;
            pending.delete(name);
          }
        }
        return pending.size === 0;
      },
      PROCESSING_TIMEOUT_MS,
      'every clip to finish processing',
      1000,
    ).catch((err: unknown) => {
      for (const name of pending.keys()) outcomes.get(name)!.problem = (err as Error).message;
    });
    for (const clip of clips) {
      const outcome = outcomes.get(clip.name)!;
      const id = (outcome.upload.body as { id?: string })?.id;
      if (typeof id !== 'string') continue;
      if (outcome.record === undefined) {
        const res = await getJson<MediaRecord>(`${server.baseUrl}/v1/assets/${id}`);
        outcome.record = res.body;
        outcome.problem ??= `still ${res.body.status} after ${PROCESSING_TIMEOUT_MS / 60_000} min`;
      }
      outcome.runs = await getRuns(server.baseUrl, id).catch(() => undefined);
    }
  },
  PROCESSING_TIMEOUT_MS + 5 * 60_000,
);

/** One line per clip for the test output: what became of it, whichever way its test went. */
function summary(): string {
  return clips
    .map((clip) => {
      const o = outcomes.get(clip.name);
      const r = o?.record;
      const ladder = r?.ladder;
      const rungs = ladder?.rungs.map((x) => `${x.width}x${x.height}@${x.frameRate}`).join(' ') ?? '-';
      const audio = ladder?.audio ? `aac ${ladder.audio.channels}ch` : '-';
      const status = r?.status ?? `upload ${o?.upload.status}`;
      return `${clip.name.padEnd(32)} ${status.padEnd(10)} ${(ladder?.kind ?? '-').padEnd(15)} ${rungs} | ${audio}${r?.error ? ` | error: ${r.error}` : ''}${o?.problem ? ` | ${o.problem}` : ''}`;
    })
    .join('\n');
}

afterAll(async () => {
  if (clips.length > 0) console.info(`video acceptance outcomes:\n${summary()}`);
  await procs.killAll();
  await parent?.cleanup();
});

/** The finished record of a clip that must be ready, with every reason it is not in the message. */
function readyRecord(clip: Clip): MediaRecord & { ladder: Ladder; hls: string } {
  const outcome = outcomes.get(clip.name);
  expect(outcome?.upload.status, explain(clip)).toBe(201);
  const record = outcome!.record;
  expect(record?.status, explain(clip)).toBe('ready');
  expect(record!.ladder, `the ready record has a ladder\n${explain(clip)}`).toBeTruthy();
  expect(typeof record!.hls, `the ready record has an hls URL\n${explain(clip)}`).toBe('string');
  return record as MediaRecord & { ladder: Ladder; hls: string };
}

interface Judged {
  record: MediaRecord & { ladder: Ladder; hls: string };
  report: PackageReport;
}

/**
 * Downloads the published package (no API key), runs every package, storyboard and poster check,
 * and compares the record with the master playlist it published.
 */
async function judgeReady(clip: Clip): Promise<Judged> {
  if (clip.expect.status !== 'ready') throw new Error(`${clip.name} is not expected to be ready`);
  const expected = clip.expect;
  const record = readyRecord(clip);
  const ladder = record.ladder;
  expect(ladder.kind, explain(clip)).toBe(expected.kind);
  expect(ladder.segmentDurationSec, `the server's segment setting took effect\n${explain(clip)}`).toBe(
    SEGMENT_SEC,
  );
  expect(record.durationSec, explain(clip)).toBeCloseTo(expected.durationSec, 1);

  const dir = join(parent!.dir, 'downloaded', clip.name);
  const hasVideo = expected.kind !== 'audio-only';
  if (hasVideo) {
    expect(record.poster, `a video has a poster\n${explain(clip)}`).toBeTruthy();
    expect(record.storyboard, `a video has a storyboard\n${explain(clip)}`).toBeTruthy();
  } else {
    expect(record.poster ?? null, explain(clip)).toBeNull();
    expect(record.storyboard ?? null, explain(clip)).toBeNull();
  }
  const downloaded = await downloadPackage({
    baseUrl: server.baseUrl,
    masterUrl: record.hls,
    dir,
    storyboardVttUrl: record.storyboard?.vtt ?? null,
    extraUrls: [record.poster?.jpeg, record.poster?.webp, record.dash],
  });

  const report = await checkPackage({
    dir,
    source: clip.path,
    rungs: ladder.rungs,
    audio: ladder.audio === null ? null : { codec: ladder.audio.codec, channels: ladder.audio.channels },
  });
  expect(report.findings, show(clip, report.findings)).toEqual([]);

  // The record says what the master says.
  const master = parseMaster(await readFile(join(dir, 'master.m3u8'), 'utf8'));
  for (const rung of ladder.rungs) {
    const variant = master.variants.find((v) => v.uri === `${rung.id}/index.m3u8`);
    expect(variant?.attributes, `${rung.id} in the master\n${explain(clip)}`).toMatchObject({
      BANDWIDTH: String(rung.bandwidth),
      'AVERAGE-BANDWIDTH': String(rung.averageBandwidth),
      CODECS: rung.codecs,
    });
  }

  if (record.dash) {
    const mpd = await readFile(downloaded.extras.get(record.dash)!, 'utf8');
    expect(mpd, `the MPD at ${record.dash}`).toMatch(/<MPD[\s>]/);
  }
  if (hasVideo) {
    const sheets = downloaded.storyboard!.sheets;
    expect(sheets.size, explain(clip)).toBe(record.storyboard!.sheets.length);
    const storyboard = await checkStoryboard({
      vttPath: downloaded.storyboard!.vtt,
      durationSec: record.durationSec!,
      sheetPath: (uri) => sheets.get(uri),
    });
    expect(storyboard.findings, show(clip, storyboard.findings)).toEqual([]);
    for (const url of [record.poster!.jpeg, record.poster!.webp]) {
      const poster = await checkPoster(downloaded.extras.get(url)!);
      expect(poster.findings, show(clip, poster.findings)).toEqual([]);
      // The poster is shown as the video is: its displayed (rotated) shape.
      const display = expected.display!;
      expect(poster.width / poster.height, `poster ${url} shape\n${explain(clip)}`).toBeCloseTo(
        display.width / display.height,
        1,
      );
    }
  }
  if (expected.display !== null) expectSaneRungs(clip, ladder, expected.display);
  return { record, report };
}

/** What every video ladder must be: largest first, even sizes, the source's shape, no upscale. */
function expectSaneRungs(clip: Clip, ladder: Ladder, display: { width: number; height: number }): void {
  const context = explain(clip);
  expect(ladder.rungs.length, context).toBeGreaterThan(0);
  const pixels = ladder.rungs.map((r) => r.width * r.height);
  expect(pixels, `rungs largest first\n${context}`).toEqual([...pixels].sort((a, b) => b - a));
  for (const rung of ladder.rungs) {
    expect(rung.width % 2 === 0 && rung.height % 2 === 0, `${rung.id} has even sizes\n${context}`).toBe(true);
    expect(
      rung.width <= display.width && rung.height <= display.height,
      `${rung.id} no upscale\n${context}`,
    ).toBe(true);
    expect(rung.width / rung.height, `${rung.id} keeps the shape\n${context}`).toBeCloseTo(
      display.width / display.height,
      1,
    );
    expect(rung.bandwidth, `${rung.id} BANDWIDTH\n${context}`).toBeGreaterThan(0);
  }
}

const clipNamed = (name: string): Clip => {
  const clip = clips.find((c) => c.name === name);
  if (clip === undefined) throw new Error(`no clip named ${name}`);
  return clip;
};
const shortSide = (r: LadderRung) => Math.min(r.width, r.height);

describe('video on demand acceptance: every clip ends ready with a sensible ladder or failed with a reason', () => {
  it('1080p60 H.264 with 5.1: top rung 1080p at 60 fps, rungs at or below 480p at 30, stereo AAC downmixed from 6 channels', async () => {
    const clip = clipNamed('h264-1080p60-5.1.mp4');
    const { record, report } = await judgeReady(clip);
    const context = explain(clip);
    // Two segments: the keyframe check compared 0 and 1 s in every rung, 60 and 30 fps alike.
    for (const rendition of report.renditions.filter((r) => r.kind === 'video')) {
      expect(
        rendition.extent?.keyframeTimesSec.map((t) => Math.round(t * 1000)),
        context,
      ).toEqual([0, 1000]);
    }
    const [top] = record.ladder.rungs;
    expect(top, context).toMatchObject({ codec: 'h264', width: 1920, height: 1080, frameRate: 60 });
    for (const rung of record.ladder.rungs.slice(1)) {
      expect(rung.frameRate, `${rung.id}\n${context}`).toBe(shortSide(rung) <= 480 ? 30 : 60);
    }
    expect(record.ladder.audio, context).toMatchObject({ codec: 'aac', channels: 2, downmixFromChannels: 6 });
  });

  it('4K HEVC 10-bit PQ: tone-mapped to SDR (and the reasons say so), no rung above 1080p by default', async () => {
    const clip = clipNamed('hevc-2160p-pq.mp4');
    const { record, report } = await judgeReady(clip);
    const context = explain(clip);
    expect(record.ladder.reasons.join('\n'), context).toMatch(/tone[- ]?map/i);
    expect(record.ladder.rungs[0], context).toMatchObject({ width: 1920, height: 1080 });
    for (const rung of record.ladder.rungs)
      expect(shortSide(rung), `${rung.id}\n${context}`).toBeLessThanOrEqual(1080);
    for (const rendition of report.renditions.filter((r) => r.kind === 'video')) {
      expect(rendition.pixelFormat, `${rendition.playlist}\n${context}`).toBe('yuv420p');
      expect(['smpte2084', 'arib-std-b67'], `${rendition.playlist} is SDR\n${context}`).not.toContain(
        rendition.colorTransfer,
      );
    }
  });

  it('portrait 1080x1920 (landscape frames + display matrix): portrait-shaped rungs, top 1080x1920', async () => {
    const clip = clipNamed('portrait-1080x1920-rotated.mp4');
    const { record } = await judgeReady(clip);
    const context = explain(clip);
    expect(record.ladder.rungs[0], context).toMatchObject({ width: 1080, height: 1920 });
    for (const rung of record.ladder.rungs) {
      expect(rung.height, `${rung.id} is portrait\n${context}`).toBeGreaterThan(rung.width);
    }
  });

  it('320x180 VP9 WebM: one small rung at its own size', async () => {
    const clip = clipNamed('vp9-320x180.webm');
    const { record } = await judgeReady(clip);
    expect(
      record.ladder.rungs.map((r) => `${r.codec} ${r.width}x${r.height}`),
      explain(clip),
    ).toEqual(['h264 320x180']);
    expect(record.ladder.audio, explain(clip)).toMatchObject({ codec: 'aac', channels: 2 });
  });

  it('variable frame rate phone clip: constant-rate rungs, and the reasons say why', async () => {
    const clip = clipNamed('vfr-phone.mp4');
    const { record } = await judgeReady(clip);
    const context = explain(clip);
    expect(record.ladder.reasons.join('\n'), context).toMatch(/variable frame rate/i);
    // checkPackage already found every frame of every rung lasting 1 / its planned rate.
    for (const rung of record.ladder.rungs) {
      expect(Number.isInteger(rung.frameRate), `${rung.id} at ${rung.frameRate} fps\n${context}`).toBe(true);
    }
  });

  it('video without audio: a video-only ladder with no audio group', async () => {
    const clip = clipNamed('no-audio-480p.mp4');
    const { record, report } = await judgeReady(clip);
    expect(record.ladder.audio, explain(clip)).toBeNull();
    expect(report.audioPlaylist, explain(clip)).toBeNull();
    expect(record.ladder.rungs[0], explain(clip)).toMatchObject({ width: 854, height: 480 });
  });

  it.each([
    ['tone-stereo.wav', null],
    ['noise-mono.mp3', null],
  ])(
    'audio-only %s: an HLS package of one stereo AAC rendition, no rungs, no poster',
    async (name, downmix) => {
      const clip = clipNamed(name);
      const { record, report } = await judgeReady(clip);
      const context = explain(clip);
      expect(record.ladder.rungs, context).toEqual([]);
      expect(record.ladder.audio, context).toMatchObject({
        codec: 'aac',
        channels: 2,
        downmixFromChannels: downmix,
      });
      expect(
        report.renditions.map((r) => `${r.kind} ${r.codec} ${r.channels}`),
        context,
      ).toEqual(['audio aac 2']);
    },
  );

  it('one-frame video: ready with the single rung the planner gives one frame', async () => {
    const clip = clipNamed('one-frame.mp4');
    const { record } = await judgeReady(clip);
    expect(
      record.ladder.rungs.map((r) => `${r.width}x${r.height}`),
      explain(clip),
    ).toEqual(['640x360']);
    expect(record.ladder.reasons.join('\n'), explain(clip)).toMatch(/single frame/i);
  });

  it('truncated MP4 (probes fine, only a decode finds it): failed, with a reason a person understands', () => {
    const clip = clipNamed('truncated-faststart.mp4');
    if (clip.expect.status !== 'failed') throw new Error('the truncated clip must be expected to fail');
    const outcome = outcomes.get(clip.name);
    expect(outcome?.upload.status, explain(clip)).toBe(201);
    const record = outcome!.record;
    expect(record?.status, explain(clip)).toBe('failed');
    const error = record!.error ?? '';
    expect(error, explain(clip)).toMatch(clip.expect.reason);
    // Words for a person: no tool output, no internal paths, not a wall of text.
    expect(error, explain(clip)).not.toMatch(
      /@ 0x[0-9a-f]+|exited with code|ffmpeg |ffprobe |\/tmp\/|blobs\//,
    );
    expect(error.length, explain(clip)).toBeLessThanOrEqual(300);
    expect(record!.hls ?? null, explain(clip)).toBeNull();
  });

  it('every clip of the set was judged above', () => {
    expect(clips.map((c) => c.name).sort()).toEqual(
      [
        'h264-1080p60-5.1.mp4',
        'hevc-2160p-pq.mp4',
        'no-audio-480p.mp4',
        'noise-mono.mp3',
        'one-frame.mp4',
        'portrait-1080x1920-rotated.mp4',
        'tone-stereo.wav',
        'truncated-faststart.mp4',
        'vfr-phone.mp4',
        'vp9-320x180.webm',
      ].sort(),
    );
  });
});
