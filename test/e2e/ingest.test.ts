import { writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, ProcessGroup } from '../helpers/cli.js';
import { type GeneratedImage, noiseJpegs, writeImages } from '../helpers/noise-images.js';
import { tempDir } from '../helpers/tmp.js';

interface IngestLine {
  file: string;
  status: string;
  width?: number | null;
  height?: number | null;
  blurhash?: string | null;
  error?: string | null;
  code?: string;
}

/** Every stdout line must be one JSON record; returns them keyed by file name. */
function parseLines(stdout: string): { lines: IngestLine[]; byName: Map<string, IngestLine> } {
  const raw = stdout.split('\n').filter((l) => l !== '');
  const lines = raw.map((line) => {
    try {
      return JSON.parse(line) as IngestLine;
    } catch {
      throw new Error(`ingest --json printed a line that is not JSON: ${line}`);
    }
  });
  return { lines, byName: new Map(lines.map((l) => [basename(l.file), l])) };
}

describe('assetpipe ingest (real process)', () => {
  const procs = new ProcessGroup();
  let parent: { dir: string; cleanup: () => Promise<void> };
  let images: GeneratedImage[];

  beforeAll(async () => {
    await ensureBuilt();
    parent = await tempDir('assetpipe-e2e-ingest-');
    images = await noiseJpegs(50, 320, 240);
  }, 300_000);

  afterEach(async () => {
    await procs.killAll();
  });

  afterAll(async () => {
    await procs.killAll();
    await parent?.cleanup();
  });

  it('ingests a folder of 50 images: 50 JSON lines, all ready, exit 0', async () => {
    const folder = join(parent.dir, 'good');
    await writeImages(folder, images);
    const res = await procs.run(['ingest', folder, '--json', '--data', join(parent.dir, 'data-good')], {
      cwd: parent.dir,
      timeoutMs: 120_000,
    });
    expect(res.code, res.stderr).toBe(0);
    const { lines, byName } = parseLines(res.stdout);
    expect(lines).toHaveLength(50);
    expect(byName.size).toBe(50);
    for (const image of images) {
      const line = byName.get(image.name);
      expect(line, `${image.name} has a line`).toBeDefined();
      expect(line!.file).toBe(join(folder, image.name));
      expect(line!.status, `${image.name}: ${line!.error}`).toBe('ready');
      expect(line!.width).toBe(320);
      expect(line!.height).toBe(240);
      expect(line!.blurhash, image.name).toMatch(/^\S{20,}$/);
    }
  });

  it('reports a truncated JPEG as failed (non-zero exit) and the other 49 as ready', async () => {
    const folder = join(parent.dir, 'one-truncated');
    await writeImages(folder, images.slice(0, 49));
    const whole = images[49]!.bytes;
    await writeFile(join(folder, 'truncated.jpg'), whole.subarray(0, Math.floor(whole.length * 0.6)));

    const res = await procs.run(['ingest', folder, '--json', '--data', join(parent.dir, 'data-truncated')], {
      cwd: parent.dir,
      timeoutMs: 120_000,
    });
    expect(res.code, res.stderr).not.toBe(0);
    expect(res.code, res.stderr).not.toBeNull();
    const { lines, byName } = parseLines(res.stdout);
    expect(lines).toHaveLength(50);
    const broken = byName.get('truncated.jpg');
    expect(broken, 'truncated.jpg has a line').toBeDefined();
    expect(broken!.status).toBe('failed');
    expect(typeof broken!.error).toBe('string');
    expect(broken!.error).toMatch(/truncated|incomplete/i);
    for (const image of images.slice(0, 49)) {
      const line = byName.get(image.name);
      expect(line?.status, `${image.name}: ${line?.error}`).toBe('ready');
    }
  });

  it('refuses a text file named x.jpg with MEDIA_UNSUPPORTED', async () => {
    const folder = join(parent.dir, 'text');
    await writeImages(folder, []);
    await writeFile(join(folder, 'x.jpg'), 'this is plain text, not a JPEG\n'.repeat(20));
    const res = await procs.run(['ingest', folder, '--json', '--data', join(parent.dir, 'data-text')], {
      cwd: parent.dir,
      timeoutMs: 60_000,
    });
    expect(res.code, res.stderr).not.toBe(0);
    expect(res.code, res.stderr).not.toBeNull();
    const { lines } = parseLines(res.stdout);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      file: join(folder, 'x.jpg'),
      status: 'failed',
      code: 'MEDIA_UNSUPPORTED',
    });
    expect(lines[0]!.error).toMatch(/\S/);
  });

  it('exits non-zero with a message naming a path that does not exist', async () => {
    const missing = join(parent.dir, 'no-such-folder');
    const res = await procs.run(['ingest', missing, '--json', '--data', join(parent.dir, 'data-missing')], {
      cwd: parent.dir,
      timeoutMs: 60_000,
    });
    expect(res.code, res.stderr).not.toBe(0);
    expect(res.code, res.stderr).not.toBeNull();
    expect(res.stderr).toContain(missing);
    expect(res.stdout).toBe('');
  });
});
