import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { upload } from '../helpers/api.js';
import { ensureBuilt, ProcessGroup } from '../helpers/cli.js';
import { makeJpeg } from '../helpers/images.js';
import { tempDir } from '../helpers/tmp.js';

describe('assetpipe sign-url (real processes)', () => {
  const procs = new ProcessGroup();
  let parent: { dir: string; cleanup: () => Promise<void> };

  beforeAll(async () => {
    await ensureBuilt();
    parent = await tempDir('assetpipe-e2e-sign-url-');
  }, 300_000);
  afterEach(async () => procs.killAll());
  afterAll(async () => parent.cleanup());

  it('prints a signed URL that the server accepts; refuses what the server would refuse', async () => {
    const data = join(parent.dir, 'data');
    const server = await procs.serve(data, { args: ['--no-workers'] });
    const created = await upload(server.baseUrl, await makeJpeg({ width: 320, height: 240 }), 'p.jpg', {
      type: 'image/jpeg',
    });
    expect(created.status).toBe(201);
    const { id } = created.body as { id: string };

    const env = { ASSETPIPE_PUBLIC_URL: server.baseUrl };
    const signed = await procs.run(
      ['sign-url', `/img/${id}?w=160&f=webp`, '--expires-in', '600', '--data', data],
      {
        env,
      },
    );
    expect(signed.code, signed.stderr).toBe(0);
    const url = signed.stdout.trim();
    expect(url.startsWith(`${server.baseUrl}/img/${id}?`)).toBe(true);
    const params = new URL(url).searchParams;
    expect(params.get('v')).toBe('1');
    expect(Number(params.get('exp'))).toBeGreaterThan(Date.now() / 1000);

    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/webp');
    const meta = await sharp(Buffer.from(await res.arrayBuffer())).metadata();
    expect([meta.width, meta.height]).toEqual([160, 120]);
    // The same URL without its signature is refused (signatures are required by default).
    const unsigned = await fetch(`${server.baseUrl}/img/${id}?w=160&f=webp&v=1`);
    expect(unsigned.status).toBe(403);

    // Without a public URL: a path.
    const relative = await procs.run(['sign-url', `/img/${id}?w=160`, '--data', data]);
    expect(relative.code, relative.stderr).toBe(0);
    expect(relative.stdout.trim()).toMatch(new RegExp(`^/img/${id}\\?`));

    const invalid = await procs.run(['sign-url', `/img/${id}?w=100000`, '--data', data]);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toMatch(/w="100000"/);
    const unknown = await procs.run(['sign-url', '/img/ast_00000000000000000000000000?w=64', '--data', data]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/No asset/);
  });
});
