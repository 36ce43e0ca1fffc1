import { describe, expect, it } from 'vitest';
import { bucketProblem, parseS3Location, s3ClientConfig } from './s3-location.js';

describe('parseS3Location', () => {
  it.each([
    [
      's3://media',
      { bucket: 'media', prefix: '', endpoint: undefined, region: 'us-east-1', forcePathStyle: false },
    ],
    [
      's3://media/',
      { bucket: 'media', prefix: '', endpoint: undefined, region: 'us-east-1', forcePathStyle: false },
    ],
    ['s3://media/a/b', { bucket: 'media', prefix: 'a/b/' }],
    ['s3://media/a/b/', { bucket: 'media', prefix: 'a/b/' }],
    ['s3://media/with%20space/x', { prefix: 'with space/x/' }],
    [
      's3://my.bucket-1/p?endpoint=http://127.0.0.1:9000&region=eu-central-1&forcePathStyle=true',
      {
        bucket: 'my.bucket-1',
        prefix: 'p/',
        endpoint: 'http://127.0.0.1:9000',
        region: 'eu-central-1',
        forcePathStyle: true,
      },
    ],
    // An endpoint means a self-hosted server: path style unless told otherwise.
    [
      's3://media?endpoint=https://minio.example.com',
      { endpoint: 'https://minio.example.com', forcePathStyle: true },
    ],
    ['s3://media?endpoint=https://r2.example.com&forcePathStyle=false', { forcePathStyle: false }],
    ['s3://media?forcePathStyle=1', { forcePathStyle: true }],
    ['s3://media?forcePathStyle=0', { forcePathStyle: false }],
    ['s3://media?endpoint=http://host:9000/', { endpoint: 'http://host:9000' }],
    ['s3://media?endpoint=https%3A%2F%2Fs3.example.com%3A8443', { endpoint: 'https://s3.example.com:8443' }],
    ['s3://media?region=auto', { region: 'auto' }],
  ])('parses %s', (url, expected) => {
    expect(parseS3Location(url)).toMatchObject(expected);
  });

  it('accepts a URL object as well as a string', () => {
    expect(parseS3Location(new URL('s3://media/x?region=us-west-2'))).toEqual({
      bucket: 'media',
      prefix: 'x/',
      endpoint: undefined,
      region: 'us-west-2',
      forcePathStyle: false,
    });
  });

  it.each([
    ['not a URL', 'media', /not a valid URL/],
    ['another scheme', 'https://media.s3.amazonaws.com', /expected an s3:\/\/ URL/],
    ['a missing bucket', 's3:///prefix', /bucket name "" is not valid/],
    ['a short bucket', 's3://ab', /3 to 63 characters/],
    ['a long bucket', `s3://${'b'.repeat(64)}`, /3 to 63 characters/],
    ['an uppercase bucket', 's3://Media', /lowercase letters/],
    ['an underscore bucket', 's3://my_bucket', /lowercase letters/],
    ['a bucket ending in a dash', 's3://media-', /start and end with a letter or digit/],
    ['a bucket with adjacent dots', 's3://me..dia', /two adjacent dots/],
    ['an IP bucket', 's3://192.168.1.1', /IP address/],
    ['a port on the bucket', 's3://media:9000', /cannot have a port.*endpoint/],
    ['credentials', 's3://key:secret@media', /AWS_ACCESS_KEY_ID/],
    ['an unknown parameter', 's3://media?endpiont=http://x', /unknown parameter "endpiont"/],
    ['an unknown parameter after known ones', 's3://media?region=x&sse=aws:kms', /unknown parameter "sse"/],
    ['a repeated parameter', 's3://media?region=a&region=b', /region is given twice/],
    ['an empty parameter', 's3://media?region=', /region is empty/],
    ['a bad region', 's3://media?region=us east', /region "us east" is not valid/],
    [
      'an endpoint that is not a URL',
      's3://media?endpoint=localhost:9000',
      /must be an http:\/\/ or https:\/\/ URL/,
    ],
    ['an endpoint that is no URL at all', 's3://media?endpoint=nope', /is not a URL/],
    ['an endpoint with credentials', 's3://media?endpoint=http://u:p@host', /credentials do not belong/],
    [
      'a bad forcePathStyle',
      's3://media?forcePathStyle=yes',
      /forcePathStyle must be true or false, got "yes"/,
    ],
    ['an empty prefix segment', 's3://media/a//b', /prefix "a\/\/b" is not valid/],
    ['a control character in the prefix', 's3://media/a%09b', /control character/],
    ['bad percent-encoding in the prefix', 's3://media/%E0%A4%A', /not valid percent-encoding/],
    ['a fragment', 's3://media#x', /fragment/],
  ])('rejects %s with CONFIG_INVALID and says why', (_label, url, message) => {
    let caught: unknown;
    try {
      parseS3Location(url);
    } catch (err) {
      caught = err;
    }
    expect(caught).toMatchObject({ code: 'CONFIG_INVALID' });
    expect((caught as Error).message).toMatch(message);
  });
});

describe('bucketProblem', () => {
  it.each(['abc', 'media', 'my.bucket', 'a-b-c', '123', `b${'x'.repeat(61)}b`])('accepts %s', (name) => {
    expect(bucketProblem(name)).toBeUndefined();
  });
});

describe('s3ClientConfig', () => {
  it('passes the location on and sends checksums only where S3 requires them', () => {
    const location = parseS3Location('s3://media/p?endpoint=http://127.0.0.1:9000');
    expect(s3ClientConfig(location)).toEqual({
      region: 'us-east-1',
      endpoint: 'http://127.0.0.1:9000',
      forcePathStyle: true,
      credentials: undefined,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: {
        connectionTimeout: 3000,
        socketTimeout: 60_000,
        httpAgent: { keepAlive: true, maxSockets: 256 },
        httpsAgent: { keepAlive: true, maxSockets: 256 },
      },
    });
    const credentials = { accessKeyId: 'a', secretAccessKey: 's' };
    expect(s3ClientConfig(location, credentials).credentials).toBe(credentials);
  });
});
