import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import pino from 'pino';
import sharp from 'sharp';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Container } from '../../src/container.js';
import { DEFAULT_IMAGE_PRESETS, parseImagePresets } from '../../src/domain/image-presets.js';
import { AppError } from '../../src/errors.js';
import { Metrics } from '../../src/metrics.js';
import { PIPELINES } from '../../src/pipeline/pipelines.js';
import { PipelineRunner, type RunAttempt } from '../../src/pipeline/runner.js';
import type { PipelineDefinition } from '../../src/pipeline/step.js';
import { testContainer } from '../helpers/container.js';
import { makeJpeg, makePngBomb, makeTruncatedJpeg } from '../helpers/images.js';

function attempt(n = 1, max = 3): RunAttempt {
  return { attempt: n, maxAttempts: max, signal: new AbortController().signal, progress: async () => {} };
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('PipelineRunner (real SQLite, filesystem blobs, sharp)', () => {
  let container: Container;
  let cleanup: () => Promise<void>;

  beforeEach(async () => {
    ({ container, cleanup } = await testContainer());
  });
  afterEach(async () => cleanup());

  async function upload(bytes: Buffer, filename = 'photo.jpg') {
    const asset = await container.assets.ingest(Readable.from([bytes]), { filename, projectId: 'default' });
    const [run] = await container.catalog.listRunsWithSteps(asset.id);
    return { asset, runId: run!.id };
  }

  it('publishes an image with its facts, placeholders, perceptual hash and variants', async () => {
    // EXIF orientation 6: stored 400x200, displayed 200x400.
    const { asset, runId } = await upload(await makeJpeg({ width: 400, height: 200, orientation: 6 }));
    expect(await container.runner.execute(runId, attempt())).toBe('published');

    const ready = await container.catalog.getAsset(asset.id);
    expect(ready).toMatchObject({ status: 'ready', width: 200, height: 400, format: 'jpeg', error: null });
    expect(ready!.blurhash).toMatch(/^[0-9A-Za-z#$%*+,\-.:;=?@[\]^_{|}~]{28}$/);
    expect(ready).toMatchObject({ perceptualHash: expect.stringMatching(/^[0-9a-f]{16}$/) });
    expect(ready!.processedAt).not.toBeNull();

    // Default presets: thumb=320:webp;preview=1280:webp+avif. The 200x400 image is never enlarged.
    const variants = [
      {
        name: 'thumb.webp',
        preset: 'thumb',
        format: 'webp',
        width: 160,
        height: 320,
        contentType: 'image/webp',
      },
      {
        name: 'preview.webp',
        preset: 'preview',
        format: 'webp',
        width: 200,
        height: 400,
        contentType: 'image/webp',
      },
      {
        name: 'preview.avif',
        preset: 'preview',
        format: 'avif',
        width: 200,
        height: 400,
        contentType: 'image/avif',
      },
    ];
    const extra = ready!.extra;
    expect(extra).toMatchObject({
      hasAlpha: false,
      animated: false,
      frames: 1,
      pages: 1,
      colorSpace: 'srgb',
      dominantColor: expect.stringMatching(/^#[0-9a-f]{6}$/),
      thumbhash: expect.stringMatching(/^[A-Za-z0-9+/]+=*$/),
      lqip: expect.stringMatching(/^data:image\/webp;base64,[A-Za-z0-9+/]+=*$/),
      variants: variants.map((v) => ({ ...v, size: expect.any(Number) })),
    });
    expect(extra).toHaveProperty('bitsPerSample');
    expect(extra).toHaveProperty('exif');
    expect((extra.lqip as string).length).toBeLessThan(1024);

    const renditions = await container.catalog.listRenditions(asset.id, 1);
    expect(renditions.map((r) => [r.name, r.contentType, r.width, r.height]).sort()).toEqual(
      variants.map((v) => [v.name, v.contentType, v.width, v.height]).sort(),
    );
    for (const rendition of renditions) {
      const bytes = await readAll(await container.blobs.get(rendition.key));
      const listed = (extra.variants as { name: string; size: number }[]).find(
        (v) => v.name === rendition.name,
      );
      expect(listed?.size, rendition.name).toBe(bytes.length);
      const meta = await sharp(bytes).metadata();
      expect([meta.format, meta.width, meta.height], rendition.name).toEqual([
        rendition.name.endsWith('.avif') ? 'heif' : 'webp',
        rendition.width,
        rendition.height,
      ]);
    }

    const [run] = await container.catalog.listRunsWithSteps(asset.id);
    expect(run!.status).toBe('succeeded');
    expect(run!.steps.map((s) => [s.name, s.status])).toEqual([
      ['probe', 'succeeded'],
      ['placeholders', 'succeeded'],
      ['variants', 'succeeded'],
      ['publish', 'succeeded'],
    ]);
    for (const step of run!.steps) expect(step.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('publishes an animated GIF with an animated WebP variant', async () => {
    const [width, frameHeight, frames] = [160, 120, 3];
    const strip = Buffer.alloc(width * frameHeight * frames * 3);
    for (let i = 0; i < strip.length; i++)
      strip[i] = (Math.floor(i / (width * frameHeight * 3)) * 90 + (i % 7)) % 256;
    const gif = await sharp(strip, {
      raw: { width, height: frameHeight * frames, channels: 3, pageHeight: frameHeight },
    })
      .gif({ delay: 80 })
      .toBuffer();
    const { asset, runId } = await upload(gif, 'anim.gif');
    expect(await container.runner.execute(runId, attempt())).toBe('published');

    const ready = await container.catalog.getAsset(asset.id);
    expect(ready).toMatchObject({ status: 'ready', width, height: frameHeight, format: 'gif' });
    expect(ready!.extra).toMatchObject({ animated: true, frames, pages: frames });
    const renditions = await container.catalog.listRenditions(asset.id, 1);
    const webp = renditions.find((r) => r.name === 'thumb.webp');
    const avif = renditions.find((r) => r.name === 'preview.avif');
    const webpMeta = await sharp(await readAll(await container.blobs.get(webp!.key)), {
      pages: -1,
    }).metadata();
    expect(webpMeta).toMatchObject({ format: 'webp', pages: frames, width, pageHeight: frameHeight });
    const avifMeta = await sharp(await readAll(await container.blobs.get(avif!.key))).metadata();
    expect([avifMeta.format, avifMeta.width, avifMeta.height, avifMeta.pages ?? 1]).toEqual([
      'heif',
      width,
      frameHeight,
      1,
    ]);
  });

  it('fails a truncated JPEG for good with a reason a person understands, keeping the original', async () => {
    const bytes = await makeTruncatedJpeg();
    const { asset, runId } = await upload(bytes, 'broken.jpg');
    // A permanent failure ends the run on the first attempt: no retry could fix the file.
    expect(await container.runner.execute(runId, attempt(1, 5))).toBe('failed');

    const failed = await container.catalog.getAsset(asset.id);
    expect(failed!.status).toBe('failed');
    expect(failed!.error).toMatch(/truncated|incomplete/i);
    const version = await container.catalog.getVersion(asset.id, 1);
    const stored = await readAll(await container.blobs.get(version!.originalKey));
    expect(createHash('sha256').update(stored).digest('hex')).toBe(
      createHash('sha256').update(bytes).digest('hex'),
    );
    expect(await container.catalog.listRenditions(asset.id, 1)).toEqual([]);
  });

  it('refuses a decompression bomb from its header, before decoding', async () => {
    // Uploads refuse a bomb up front (422), so put it straight into the blob store under an
    // accepted upload's original: the pipeline must still refuse it on its own.
    const { asset, runId } = await upload(await makeJpeg(), 'bomb.png');
    const version = await container.catalog.getVersion(asset.id, 1);
    await container.blobs.put(version!.originalKey, makePngBomb());
    expect(await container.runner.execute(runId, attempt())).toBe('failed');
    const failed = await container.catalog.getAsset(asset.id);
    expect(failed!.error).toMatch(/30000 x 30000 pixels .* over this server's limit of 50 MP/);
    expect(await container.catalog.listRenditions(asset.id, 1)).toEqual([]);
  });

  it('does nothing for a run that already finished (a duplicate delivery)', async () => {
    const { runId } = await upload(await makeJpeg());
    expect(await container.runner.execute(runId, attempt())).toBe('published');
    expect(await container.runner.execute(runId, attempt(2))).toBe('already-finished');
    const run = await container.catalog.getRun(runId);
    expect(run!.attempts).toBe(1);
  });

  describe('with a flaky step', () => {
    function runnerWith(pipeline: PipelineDefinition) {
      return new PipelineRunner({
        catalog: container.catalog,
        blobs: container.blobs,
        queue: container.queue,
        logger: pino({ level: 'silent' }),
        metrics: new Metrics({ defaultMetrics: false }),
        pipelines: { ...PIPELINES, image: pipeline },
        limits: { maxInputPixels: 50_000_000 },
        settings: {
          imagePresets: parseImagePresets(DEFAULT_IMAGE_PRESETS),
          blurhashComponents: { x: 4, y: 3 },
          video: container.config.video,
        },
        stepTimeoutMs: 5000,
        scratchRoot: `${container.config.dataDir}/scratch`,
      });
    }

    it('resumes after a failed attempt without repeating finished steps', async () => {
      let probeRuns = 0;
      let flakyRuns = 0;
      const pipeline: PipelineDefinition = {
        kind: 'image',
        steps: [
          { name: 'probe', run: async () => ({ n: ++probeRuns }) },
          {
            name: 'flaky',
            run: async () => {
              flakyRuns++;
              if (flakyRuns === 1) throw new Error('network blip');
              return { ok: true };
            },
          },
        ],
        facts: (outputs) => ({ width: Number(outputs.probe?.n) }),
      };
      const runner = runnerWith(pipeline);
      const { asset, runId } = await upload(await makeJpeg());

      await expect(runner.execute(runId, attempt(1))).rejects.toThrow('network blip');
      expect((await container.catalog.getAsset(asset.id))!.status).toBe('processing');
      expect(await runner.execute(runId, attempt(2))).toBe('published');

      expect(probeRuns).toBe(1);
      expect(flakyRuns).toBe(2);
      const [run] = await container.catalog.listRunsWithSteps(asset.id);
      expect(run!.attempts).toBe(2);
      expect(run!.steps.map((s) => `${s.name}#${s.attempt}:${s.status}`)).toEqual([
        'probe#1:succeeded',
        'flaky#1:failed',
        'flaky#2:succeeded',
        'publish#1:succeeded',
      ]);
      expect((await container.catalog.getAsset(asset.id))!.width).toBe(1);
    });

    it('marks steps left running by a dead worker as abandoned', async () => {
      const runner = runnerWith({
        kind: 'image',
        steps: [{ name: 'probe', run: async () => ({}) }],
        facts: () => ({}),
      });
      const { asset, runId } = await upload(await makeJpeg());
      await container.catalog.startStep({
        id: 'stp_01ARZ3NDEKTSV4RRFFQ69G5FAV',
        runId,
        name: 'probe',
        attempt: 1,
        startedAt: new Date().toISOString(),
      });
      expect(await runner.execute(runId, attempt(2))).toBe('published');
      const [run] = await container.catalog.listRunsWithSteps(asset.id);
      expect(run!.steps.map((s) => `${s.name}#${s.attempt}:${s.status}`)).toEqual([
        'probe#1:abandoned',
        'probe#2:succeeded',
        'publish#1:succeeded',
      ]);
    });

    it('fails the run with the reason on the last attempt', async () => {
      const runner = runnerWith({
        kind: 'image',
        steps: [
          {
            name: 'always',
            run: async () => {
              throw new Error('disk on fire');
            },
          },
        ],
        facts: () => ({}),
      });
      const { asset, runId } = await upload(await makeJpeg());
      await expect(runner.execute(runId, attempt(1, 2))).rejects.toThrow('disk on fire');
      expect(await runner.execute(runId, attempt(2, 2))).toBe('failed');
      const failed = await container.catalog.getAsset(asset.id);
      expect(failed!.status).toBe('failed');
      expect(failed!.error).toBe('Processing failed in step "always" after 2 attempts: disk on fire');
    });

    it('treats a 4xx AppError from a step as permanent', async () => {
      let calls = 0;
      const runner = runnerWith({
        kind: 'image',
        steps: [
          {
            name: 'strict',
            run: async () => {
              calls++;
              throw new AppError('MEDIA_INVALID', 'The file is not what it claims to be.');
            },
          },
        ],
        facts: () => ({}),
      });
      const { asset, runId } = await upload(await makeJpeg());
      expect(await runner.execute(runId, attempt(1, 5))).toBe('failed');
      expect(calls).toBe(1);
      expect((await container.catalog.getAsset(asset.id))!.error).toBe(
        'The file is not what it claims to be.',
      );
    });

    it('publishes only when every recorded output is in the blob store', async () => {
      const runner = runnerWith({
        kind: 'image',
        steps: [
          {
            name: 'render',
            run: async (ctx) => {
              const out = await ctx.writeOutput({
                name: 'thumb',
                body: Buffer.from('x'),
                contentType: 'image/webp',
              });
              await container.blobs.delete(out.key); // lost between the step and publish
              return {};
            },
          },
        ],
        facts: () => ({}),
      });
      const { asset, runId } = await upload(await makeJpeg());
      await expect(runner.execute(runId, attempt(1, 3))).rejects.toThrow(/missing or incomplete/);
      expect((await container.catalog.getAsset(asset.id))!.status).toBe('processing');
    });
  });
});
