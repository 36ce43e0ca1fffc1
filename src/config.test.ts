import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseByteSize } from './config.js';

describe('loadConfig', () => {
  it('has working defaults with an empty environment', () => {
    const config = loadConfig({});
    expect(config.port).toBe(8080);
    expect(config.host).toBe('127.0.0.1');
    expect(config.dataDir.endsWith('/data')).toBe(true);
    expect(config.databaseUrl).toBe(`sqlite://${config.dataDir}/assetpipe.db`);
    expect(config.storage).toBe(`file://${config.dataDir}/blobs`);
    expect(config.workers).toBeGreaterThanOrEqual(1);
    expect(config.maxUploadBytes).toBe(10 * 1024 ** 3);
  });

  it('lets flags win over the environment', () => {
    const config = loadConfig(
      { ASSETPIPE_PORT: '9000', ASSETPIPE_HOST: '0.0.0.0' },
      { port: '9100', data: '/tmp/x' },
    );
    expect(config.port).toBe(9100);
    expect(config.host).toBe('0.0.0.0');
    expect(config.dataDir).toBe('/tmp/x');
  });

  it('turns --no-workers into zero workers and --workers N into N', () => {
    expect(loadConfig({}, { workers: false }).workers).toBe(0);
    expect(loadConfig({}, { workers: '3' }).workers).toBe(3);
    expect(loadConfig({ ASSETPIPE_WORKERS: '5' }).workers).toBe(5);
  });

  it.each([
    [{ ASSETPIPE_PORT: 'abc' }, 'ASSETPIPE_PORT'],
    [{ ASSETPIPE_PORT: '70000' }, 'ASSETPIPE_PORT'],
    [{ ASSETPIPE_WORKERS: '-1' }, 'ASSETPIPE_WORKERS'],
    [{ ASSETPIPE_MAX_UPLOAD_BYTES: 'lots' }, 'ASSETPIPE_MAX_UPLOAD_BYTES'],
    [{ ASSETPIPE_LOG_LEVEL: 'loud' }, 'ASSETPIPE_LOG_LEVEL'],
    [{ ASSETPIPE_JOB_LEASE_MS: '5' }, 'ASSETPIPE_JOB_LEASE_MS'],
    [{ ASSETPIPE_DATABASE_URL: 'mysql://x' }, 'ASSETPIPE_DATABASE_URL'],
    [{ ASSETPIPE_STORAGE: 'ftp://x' }, 'ASSETPIPE_STORAGE'],
    [{ ASSETPIPE_STORAGE: 's3://UPPER?endpoint=http://x' }, 'ASSETPIPE_STORAGE'],
    [{ ASSETPIPE_STORAGE: 's3://bucket?endpoint=http://x&regoin=eu' }, 'ASSETPIPE_STORAGE'],
    [{ ASSETPIPE_DATABASE_URL: 'postgres://db/x' }, 'ASSETPIPE_SIGNING_SECRET'],
    [
      {
        ASSETPIPE_DATABASE_URL: 'postgres://db/x',
        ASSETPIPE_SIGNING_SECRET: 's'.repeat(32),
        ASSETPIPE_DATABASE_SCHEMA: 'Drop Table',
      },
      'ASSETPIPE_DATABASE_SCHEMA',
    ],
    [{ ASSETPIPE_DATABASE_SCHEMA: 'media' }, 'ASSETPIPE_DATABASE_SCHEMA'],
    [{ ASSETPIPE_REDIS_URL: 'redis://cache:6379' }, 'ASSETPIPE_REDIS_URL'],
    [
      {
        ASSETPIPE_DATABASE_URL: 'postgres://db/x',
        ASSETPIPE_SIGNING_SECRET: 's'.repeat(32),
        ASSETPIPE_REDIS_URL: 'cache:6379',
      },
      'ASSETPIPE_REDIS_URL',
    ],
    [{ ASSETPIPE_IMAGE_PRESETS: 'thumb=320:bmp' }, 'ASSETPIPE_IMAGE_PRESETS'],
    [{ ASSETPIPE_BLURHASH_COMPONENTS: '12x3' }, 'ASSETPIPE_BLURHASH_COMPONENTS'],
    [{ ASSETPIPE_IMG_SIGNATURE: 'maybe' }, 'ASSETPIPE_IMG_SIGNATURE'],
    [{ ASSETPIPE_IMG_WIDTHS: '320,abc' }, 'ASSETPIPE_IMG_WIDTHS'],
    [{ ASSETPIPE_IMG_QUALITIES: '0' }, 'ASSETPIPE_IMG_QUALITIES'],
  ])('rejects %o naming %s', (env, variable) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    try {
      loadConfig(env);
    } catch (err) {
      expect((err as ConfigError).variable).toBe(variable);
      expect((err as Error).message).toContain(variable);
    }
  });

  it('reads the image settings', () => {
    const config = loadConfig({
      ASSETPIPE_IMAGE_PRESETS: 'card=640:jpeg@80',
      ASSETPIPE_BLURHASH_COMPONENTS: '5x4',
      ASSETPIPE_IMG_SIGNATURE: 'off',
      ASSETPIPE_IMG_WIDTHS: '640, 320,640',
      ASSETPIPE_IMG_QUALITIES: '80',
      ASSETPIPE_IMG_CONCURRENCY: '3',
      ASSETPIPE_IMG_QUEUE: '0',
    });
    expect(config.imagePresets).toEqual([{ name: 'card', maxSide: 640, formats: ['jpeg'], quality: 80 }]);
    expect(config.blurhashComponents).toEqual({ x: 5, y: 4 });
    expect(config.img).toMatchObject({
      signature: 'off',
      allowedWidths: [320, 640],
      allowedQualities: [80],
      concurrency: 3,
      queueSize: 0,
    });
    expect(loadConfig({}).img.signature).toBe('required');
  });

  it('names the flag when a flag is invalid', () => {
    expect(() => loadConfig({}, { port: 'http' })).toThrow(/--port/);
  });
});

describe('parseByteSize', () => {
  it.each([
    ['1048576', 1048576],
    ['512MiB', 512 * 1024 ** 2],
    ['10 GB', 10 * 1024 ** 3],
    ['1.5k', 1536],
  ])('%s -> %d', (raw, bytes) => {
    expect(parseByteSize('X', raw)).toBe(bytes);
  });

  it.each(['', '-1', '0', '12 parsecs', 'MiB'])('rejects %j', (raw) => {
    expect(() => parseByteSize('X', raw)).toThrow(ConfigError);
  });
});

describe('scaled-out configuration', () => {
  const secret = 's'.repeat(32);

  it('selects PostgreSQL with its schemas, the queue beside the catalog', () => {
    const config = loadConfig({
      ASSETPIPE_DATABASE_URL: 'postgres://app:pw@db.internal:5432/media',
      ASSETPIPE_SIGNING_SECRET: secret,
      ASSETPIPE_DATABASE_POOL: '4',
    });
    expect(config.database).toEqual({
      kind: 'postgres',
      url: 'postgres://app:pw@db.internal:5432/media',
      schema: 'assetpipe',
      queueSchema: 'assetpipe_queue',
      poolSize: 4,
    });
    expect(config.redisUrl).toBeUndefined();
    const named = loadConfig({
      ASSETPIPE_DATABASE_URL: 'postgresql://db/media',
      ASSETPIPE_DATABASE_SCHEMA: 'media_prod',
      ASSETPIPE_REDIS_URL: 'redis://cache:6379',
      ASSETPIPE_SIGNING_SECRET: secret,
    });
    expect(named.database).toMatchObject({
      kind: 'postgres',
      schema: 'media_prod',
      queueSchema: 'media_prod_queue',
    });
    expect(named.redisUrl).toBe('redis://cache:6379');
  });

  it('keeps the embedded SQLite file by default', () => {
    const config = loadConfig({ ASSETPIPE_DATA: '/srv/ap' });
    expect(config.database).toEqual({ kind: 'sqlite', file: '/srv/ap/assetpipe.db' });
  });

  it('accepts S3 storage URLs', () => {
    const config = loadConfig({
      ASSETPIPE_STORAGE:
        's3://media-bucket/prod?endpoint=http://127.0.0.1:9000&region=us-east-1&forcePathStyle=true',
    });
    expect(config.storage).toMatch(/^s3:\/\/media-bucket\/prod\?/);
  });

  it('never repeats a database password in its messages', () => {
    try {
      loadConfig({ ASSETPIPE_DATABASE_URL: 'mysql://root:hunter2@db/x' });
      expect.fail('accepted a MySQL URL');
    } catch (err) {
      expect((err as Error).message).not.toContain('hunter2');
      expect((err as Error).message).toContain('***');
    }
  });
});
