import { Agent, get } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { testContainer } from '../helpers/container.js';

// A client on a keep-alive connection (browsers, tus clients, load balancers) whose request is
// still running when the server is told to stop: the request completes, then the server closes
// promptly instead of keeping the connection open for Fastify's 72 s keep-alive timeout.

describe('closing the HTTP server', () => {
  it('lets a request in flight finish, then closes its keep-alive connection at once', async () => {
    const { container, cleanup } = await testContainer();
    const app = await buildApp(container);
    app.get('/slow-for-test', { config: { auth: false } }, async () => {
      await sleep(600);
      return { done: true };
    });
    const agent = new Agent({ keepAlive: true });
    try {
      await app.listen({ port: 0, host: '127.0.0.1' });
      const address = app.server.address();
      if (!address || typeof address === 'string') throw new Error('no TCP address');
      const answer = new Promise<{ status: number | undefined; body: string }>((resolve, reject) => {
        get({ host: '127.0.0.1', port: address.port, path: '/slow-for-test', agent }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            body += chunk;
          });
          res.on('end', () => resolve({ status: res.statusCode, body }));
        }).on('error', reject);
      });
      await sleep(150); // the request is in its handler now
      const closing = app.close().then(() => 'closed' as const);
      const outcome = await Promise.race([
        closing,
        sleep(20_000).then(() => 'still open after 20 s' as const),
      ]);
      expect(outcome).toBe('closed');
      expect(await answer).toEqual({ status: 200, body: JSON.stringify({ done: true }) });
    } finally {
      agent.destroy();
      await app.close();
      await cleanup();
    }
  });
});
