import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, ProcessGroup } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

describe('API keys from the command line and the first-start admin key (real processes)', () => {
  const procs = new ProcessGroup();
  let parent: { dir: string; cleanup: () => Promise<void> };

  beforeAll(async () => {
    await ensureBuilt();
    parent = await tempDir('assetpipe-e2e-keys-');
  }, 300_000);
  afterEach(async () => procs.killAll());
  afterAll(async () => parent.cleanup());

  it('creates, lists and revokes keys; a created key works against serve and a revoked one does not', async () => {
    const data = join(parent.dir, 'data');
    const created = await procs.run([
      'keys',
      'create',
      '--name',
      'ci',
      '--scope',
      'read',
      '--json',
      '--data',
      data,
    ]);
    expect(created.code, created.stderr).toBe(0);
    const record = JSON.parse(created.stdout.trim());
    expect(record).toMatchObject({ name: 'ci', scopes: ['read'], projectId: null, revokedAt: null });
    expect(record.key).toMatch(/^ap_[a-z0-9]{12}_[A-Za-z0-9]{40}$/);

    const listed = await procs.run(['keys', 'list', '--json', '--data', data]);
    expect(listed.stdout).toContain(record.id);
    expect(listed.stdout).not.toContain(record.key);

    const server = await procs.serve(data, { env: { ASSETPIPE_ADMIN_KEY: 'cli-test-admin-key-0123456789' } });
    const asKey = () =>
      fetch(`${server.baseUrl}/v1/assets`, { headers: { authorization: `Bearer ${record.key}` } });
    expect((await asKey()).status).toBe(200);
    const revoked = await procs.run(['keys', 'revoke', record.id, '--data', data]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect((await asKey()).status).toBe(401);

    const unknown = await procs.run(['keys', 'revoke', 'key_nope', '--data', data]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('key_nope');
    const badScope = await procs.run(['keys', 'create', '--name', 'x', '--scope', 'root', '--data', data]);
    expect(badScope.code).not.toBe(0);
    expect(badScope.stderr).toMatch(/read, write, admin/);
  });

  it('without ASSETPIPE_ADMIN_KEY, the first start creates an admin key, prints it once with a login URL, keeps it 0600', async () => {
    const data = join(parent.dir, 'fresh');
    const first = await procs.serve(data, { env: { ASSETPIPE_ADMIN_KEY: '' } });
    const keyLine = await (async () => {
      for (let i = 0; i < 100 && !first.child.stderr.includes('#key='); i++)
        await new Promise((r) => setTimeout(r, 50));
      return first.child.stderr;
    })();
    const match = /#key=(ap_[a-z0-9]{12}_[A-Za-z0-9]{40})/.exec(keyLine);
    expect(match, keyLine).not.toBeNull();
    const key = match![1]!;
    expect((await readFile(join(data, 'admin.key'), 'utf8')).trim()).toBe(key);
    expect((await stat(join(data, 'admin.key'))).mode & 0o777).toBe(0o600);
    const res = await fetch(`${first.baseUrl}/v1/keys`, { headers: { authorization: `Bearer ${key}` } });
    expect(res.status).toBe(200);
    await first.child.kill();

    const second = await procs.serve(data, { env: { ASSETPIPE_ADMIN_KEY: '' } });
    await new Promise((r) => setTimeout(r, 300));
    expect(second.child.stderr).not.toContain(key);
    expect(second.child.stderr).toContain('admin.key');
  });
});
