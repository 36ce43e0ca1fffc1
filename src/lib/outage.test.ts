import { describe, expect, it } from 'vitest';
import { AppError } from '../errors.js';
import { asOutage, isOutage } from './outage.js';

function withCode(code: string, message = 'x'): Error {
  return Object.assign(new Error(message), { code });
}

describe('isOutage', () => {
  it('recognises a peer that is down, restarting or unreachable', () => {
    expect(isOutage(withCode('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432'))).toBe(true);
    expect(isOutage(withCode('57P01', 'terminating connection due to administrator command'))).toBe(true);
    expect(isOutage(withCode('57P03', 'the database system is starting up'))).toBe(true);
    expect(isOutage(withCode('08006'))).toBe(true);
    expect(isOutage(withCode('53300', 'sorry, too many clients already'))).toBe(true);
    expect(isOutage(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isOutage(new Error('timeout exceeded when trying to connect'))).toBe(true);
    expect(isOutage(new Error('Query read timeout'))).toBe(true);
  });

  it('looks through wrappers: cause chains and aggregate errors', () => {
    const wrapped = new AppError('UNAVAILABLE', 'store down', { cause: withCode('ECONNRESET') });
    expect(isOutage(wrapped)).toBe(true);
    expect(isOutage(new AggregateError([new Error('a'), withCode('ECONNREFUSED')]))).toBe(true);
    expect(
      isOutage(new Error('outer', { cause: new Error('inner', { cause: withCode('ETIMEDOUT') }) })),
    ).toBe(true);
  });

  it('leaves every other error alone, so it still fails or retries as before', () => {
    expect(isOutage(withCode('23505', 'duplicate key value violates unique constraint'))).toBe(false);
    expect(isOutage(withCode('42P01', 'relation "assets" does not exist'))).toBe(false);
    expect(isOutage(withCode('ENOENT'))).toBe(false);
    expect(isOutage(withCode('08P01', 'protocol violation'))).toBe(false);
    expect(isOutage(withCode('ENOTFOUND', 'getaddrinfo ENOTFOUND s3.exmaple.com'))).toBe(false);
    expect(isOutage(new AppError('UNAVAILABLE', 'The transform queue is full.'))).toBe(false);
    expect(isOutage(new AppError('MEDIA_INVALID', 'The image file is truncated.'))).toBe(false);
    expect(isOutage(new Error('ffmpeg exited with code 1'))).toBe(false);
    expect(isOutage(undefined)).toBe(false);
    expect(isOutage('ECONNREFUSED')).toBe(false);
  });

  it('honours errors an adapter marked as outages, and ioredis giving up while it reconnects', () => {
    expect(isOutage(asOutage(new AppError('UNAVAILABLE', 'the job queue did not answer within 5 s')))).toBe(
      true,
    );
    expect(isOutage(new Error('outer', { cause: asOutage(new Error('S3 SlowDown')) }))).toBe(true);
    expect(
      isOutage(
        new Error(
          'Reached the max retries per request limit (which is 1). Refer to "maxRetriesPerRequest" option for details.',
        ),
      ),
    ).toBe(true);
  });

  it('does not loop on a cause cycle', () => {
    const a = new Error('a') as Error & { cause?: unknown };
    const b = new Error('b', { cause: a });
    a.cause = b;
    expect(isOutage(a)).toBe(false);
  });
});
