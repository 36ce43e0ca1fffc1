import pino from 'pino';
import { type Config, loadConfig } from '../../src/config.js';
import { type Container, createContainer } from '../../src/container.js';
import { TEST_ADMIN_KEY } from './auth.js';
import { tempDir } from './tmp.js';

/** A real container (SQLite, filesystem blobs, SQLite queue) in a fresh temp data directory. */
export async function testContainer(env: Record<string, string> = {}): Promise<{
  container: Container;
  config: Config;
  dataDir: string;
  cleanup: () => Promise<void>;
}> {
  const { dir, cleanup } = await tempDir();
  const config = loadConfig(
    { ASSETPIPE_LOG_LEVEL: 'silent', ASSETPIPE_ADMIN_KEY: TEST_ADMIN_KEY, ...env },
    { data: dir },
  );
  const container = await createContainer(config, pino({ level: config.logLevel }));
  return {
    container,
    config,
    dataDir: dir,
    cleanup: async () => {
      await container.close();
      await cleanup();
    },
  };
}

/** Polls until `predicate` returns a truthy value; fails with `what` after `timeoutMs`. */
export async function waitFor<T>(
  predicate: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
