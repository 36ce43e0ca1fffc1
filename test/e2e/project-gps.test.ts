import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import type { Container } from '../../src/container.js';
import { AUTH } from '../helpers/auth.js';
import { testContainer } from '../helpers/container.js';

describe('project setting exposeGps over HTTP', () => {
  let app: FastifyInstance;
  let container: Container;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    ({ container, cleanup } = await testContainer({ ASSETPIPE_RATE_LIMIT: '0' }));
    app = await buildApp(container);
  });
  afterAll(async () => {
    await app.close();
    await cleanup();
  });

  const send = (method: 'POST' | 'PATCH', url: string, payload: unknown) =>
    app.inject({ method, url, payload: payload as Record<string, unknown>, headers: AUTH });

  it('defaults to false, is set on create, changed by PATCH and shown everywhere', async () => {
    const plain = await send('POST', '/v1/projects', { id: 'plain' });
    expect(plain.statusCode, plain.body).toBe(201);
    expect(plain.json().exposeGps).toBe(false);

    const field = await send('POST', '/v1/projects', { id: 'field', exposeGps: true });
    expect(field.statusCode, field.body).toBe(201);
    expect(field.json().exposeGps).toBe(true);
    expect((await app.inject({ url: '/v1/projects/field', headers: AUTH })).json().exposeGps).toBe(true);

    const off = await send('PATCH', '/v1/projects/field', { exposeGps: false });
    expect(off.statusCode, off.body).toBe(200);
    expect(off.json().exposeGps).toBe(false);
    const renamed = await send('PATCH', '/v1/projects/field', { name: 'Field work' });
    expect(renamed.json()).toMatchObject({ name: 'Field work', exposeGps: false });
    const items = (await app.inject({ url: '/v1/projects', headers: AUTH })).json().items;
    expect(items.map((p: { id: string; exposeGps: boolean }) => [p.id, p.exposeGps])).toEqual([
      ['default', false],
      ['field', false],
      ['plain', false],
    ]);
  });

  it('refuses a value that is not a boolean with 400', async () => {
    // (Fastify's validator coerces 0/1, "true"/"false" and null (to false) into booleans and unwraps [true], as for every body field.)
    for (const exposeGps of ['maybe', 2, {}]) {
      const res = await send('PATCH', '/v1/projects/default', { exposeGps });
      expect(res.statusCode, JSON.stringify(exposeGps)).toBe(400);
      expect(res.json().code).toBe('VALIDATION_FAILED');
    }
    await expect(
      container.projects.create({ id: 'cli', exposeGps: 'false' as unknown as boolean }),
    ).rejects.toMatchObject({
      code: 'VALIDATION_FAILED',
    });
  });
});
