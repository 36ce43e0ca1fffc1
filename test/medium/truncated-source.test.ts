import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LADDER_SETTINGS, planLadder } from '../../src/domain/ladder.js';
import { AppError } from '../../src/errors.js';
import { run } from '../../src/media/ffmpeg.js';
import { encodeLadder } from '../../src/media/ladder-encode.js';
import { ladderSourceFromProbe } from '../../src/media/ladder-source.js';
import { probeVideo } from '../../src/media/video-probe.js';
import { tempDir } from '../helpers/tmp.js';

// An MP4 written with faststart keeps its index at the front, so cut at 85 % of its bytes it still
// probes as the full length; ffmpeg decodes what is there, prints "partial file" and exits 0.
// The encode must refuse it (it would otherwise be published with its last 0.3 s missing, inside
// the validator's 0.5 s duration tolerance), and must not refuse the complete file.

const RUN = { timeoutMs: 120_000 };
let dir: string;
let cleanup: (() => Promise<void>) | undefined;
let complete: string;
let cut: string;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('assetpipe-truncated-'));
  complete = join(dir, 'complete.mp4');
  await run(
    'ffmpeg',
    [
      ...['-hide_banner', '-v', 'error', '-y'],
      ...['-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=30:duration=2'],
      ...['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000:duration=2'],
      ...['-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-c:a', 'aac'],
      ...['-movflags', '+faststart', complete],
    ],
    RUN,
  );
  const bytes = await readFile(complete);
  cut = join(dir, 'cut.mp4');
  await writeFile(cut, bytes.subarray(0, Math.floor(bytes.length * 0.85)));
}, 120_000);

afterAll(async () => {
  await cleanup?.();
});

async function encode(path: string, name: string) {
  const probe = await probeVideo(path, RUN);
  const plan = planLadder(ladderSourceFromProbe(probe), {
    ...DEFAULT_LADDER_SETTINGS,
    segmentDurationSec: 1,
  });
  return {
    probe,
    result: encodeLadder(plan, {
      input: path,
      outDir: join(dir, name),
      sourceFrameRateFps: probe.video?.frameRate ?? null,
      durationSec: probe.durationSec,
      ...RUN,
    }),
  };
}

describe('a truncated source', () => {
  it('still probes as the full length (only a decode finds it)', async () => {
    const probe = await probeVideo(cut, RUN);
    expect(probe.durationSec).toBeGreaterThan(1.9);
  });

  it('is refused by the encode with a reason a person understands', async () => {
    const { result } = await encode(cut, 'cut');
    const error = await result.then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(AppError);
    expect((error as AppError).code).toBe('MEDIA_INVALID');
    expect((error as AppError).message).toMatch(/truncated/);
  });

  it('while the complete file encodes', async () => {
    const { result } = await encode(complete, 'complete');
    await expect(result).resolves.toMatchObject({ audio: { name: 'audio' } });
  });
});
