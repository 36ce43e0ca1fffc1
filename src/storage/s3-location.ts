import type { S3ClientConfig } from '@aws-sdk/client-s3';
import { AppError } from '../errors.js';
import { keyProblem } from './keys.js';

/** Where an `S3BlobStore` keeps its objects, as read from an `s3://` storage URL. */
export interface S3Location {
  bucket: string;
  /** Prepended to every key: `''` (the bucket root) or `a/b/`. */
  prefix: string;
  /** An S3-compatible server (MinIO, Garage, R2, …); absent for AWS itself. */
  endpoint?: string | undefined;
  region: string;
  /** `bucket` in the path (`http://host/bucket/key`) instead of the host name. */
  forcePathStyle: boolean;
}

const DEFAULT_REGION = 'us-east-1';
const PARAMETERS = ['endpoint', 'region', 'forcePathStyle'] as const;
const EXAMPLE =
  's3://bucket[/key/prefix]?endpoint=http://127.0.0.1:9000&region=us-east-1&forcePathStyle=true';

/**
 * Parses `s3://bucket[/key/prefix]?endpoint=…&region=…&forcePathStyle=…`. Pure: no environment,
 * no network. Throws `AppError('CONFIG_INVALID')` whose message says what is wrong and how to fix it.
 *
 * - `region` @default 'us-east-1' (S3-compatible servers mostly ignore it, but SigV4 signs it);
 * - `forcePathStyle` @default true with an `endpoint` (what self-hosted servers expect), false without
 *   (AWS wants virtual-hosted style);
 * - the prefix is normalised to `''` or `a/b/`, and must be made of valid key segments.
 */
export function parseS3Location(input: string | URL): S3Location {
  const url = typeof input === 'string' ? parseUrl(input) : input;
  if (url.protocol !== 's3:') fail(`expected an s3:// URL (${EXAMPLE}), got ${url.protocol}//…`);
  if (url.username !== '' || url.password !== '') {
    fail(
      'credentials do not belong in the storage URL: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or an AWS profile) instead',
    );
  }
  if (url.port !== '')
    fail(`the bucket name cannot have a port (":${url.port}"); put the server in ?endpoint=`);
  if (url.hash !== '') fail('the storage URL cannot have a #fragment');

  const bucket = url.hostname;
  const bucketIssue = bucketProblem(bucket);
  if (bucketIssue) fail(`the bucket name ${JSON.stringify(bucket)} is not valid: ${bucketIssue}`);

  const params = readParameters(url.searchParams);
  const endpoint = params.endpoint === undefined ? undefined : parseEndpoint(params.endpoint);
  const region = params.region ?? DEFAULT_REGION;
  if (!/^[a-z0-9][a-z0-9-]{0,62}$/i.test(region)) {
    fail(
      `the region ${JSON.stringify(region)} is not valid: expected letters, digits and "-" (like us-east-1)`,
    );
  }
  const forcePathStyle =
    params.forcePathStyle === undefined
      ? endpoint !== undefined
      : parseBoolean('forcePathStyle', params.forcePathStyle);

  return { bucket, prefix: parsePrefix(url.pathname), endpoint, region, forcePathStyle };
}

/** How long an S3 request may wait on the network before it fails (and the SDK retries it). */
export interface S3Timeouts {
  /** To open the TCP (and TLS) connection. @default 3000 */
  connectionMs?: number | undefined;
  /** Without a byte in either direction once connected, response bodies included. @default 60000 */
  idleMs?: number | undefined;
}

/** Sockets per client (and so per process and store): parts, range reads and listings in parallel. */
const MAX_SOCKETS = 256;
const DEFAULT_CONNECTION_TIMEOUT_MS = 3000;
const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

/**
 * The S3 client settings for a location, shared by every S3 client assetpipe makes (the blob store,
 * tus uploads). Credentials default to the AWS SDK's provider chain (AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY, AWS_PROFILE, …).
 */
export function s3ClientConfig(
  location: Pick<S3Location, 'endpoint' | 'region' | 'forcePathStyle'>,
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string | undefined },
  timeouts: S3Timeouts = {},
): S3ClientConfig {
  const agent = { keepAlive: true, maxSockets: MAX_SOCKETS };
  return {
    region: location.region,
    endpoint: location.endpoint,
    forcePathStyle: location.forcePathStyle,
    credentials,
    // Since SDK 3.729 the client adds CRC32 checksums to every upload by default (`x-amz-checksum-*`
    // headers, or aws-chunked bodies with trailers for streams) and validates response checksums.
    // Many S3-compatible servers (older MinIO, Ceph RGW, Garage, s3rver, proxies in front of a
    // bucket) reject such requests, and a presigned part URL would demand a checksum the browser
    // never sends. Send and check checksums only where the S3 API requires them.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // The SDK's NodeHttpHandler has no timeouts by default (a black-holed endpoint hangs every call
    // for good) and 50 sockets per client. Passed as options, the client builds the NodeHttpHandler
    // itself (`RequestHandler.create`), so @smithy/node-http-handler need not be a dependency, and
    // the agents are the client's own: `destroy()` closes them. In @smithy/node-http-handler 4.14:
    // - `connectionTimeout`: the connect phase; a TimeoutError after it.
    // - `socketTimeout`: the socket idle timeout (no byte either way), for the whole exchange up to
    //   the end of the response body; a TimeoutError after it.
    // - `requestTimeout` is NOT used: it bounds the whole request and response, which would cut a
    //   large part upload or a long download on a slow link, and it only logs a warning unless
    //   `throwOnRequestTimeout` is set. (Older versions used it as the idle timeout; this one does not.)
    // Timeouts count as transient to the SDK's retry strategy (3 attempts in all), and the blob
    // store reports what still fails as an outage.
    requestHandler: {
      connectionTimeout: timeouts.connectionMs ?? DEFAULT_CONNECTION_TIMEOUT_MS,
      socketTimeout: timeouts.idleMs ?? DEFAULT_IDLE_TIMEOUT_MS,
      httpAgent: agent,
      httpsAgent: { ...agent },
    },
  };
}

/** Why `name` cannot be an S3 bucket name (the AWS general-purpose bucket rules), or `undefined`. */
export function bucketProblem(name: string): string | undefined {
  if (name.length < 3 || name.length > 63) return `it must be 3 to 63 characters long, not ${name.length}`;
  if (!/^[a-z0-9.-]+$/.test(name)) return 'use only lowercase letters, digits, "." and "-"';
  if (!/^[a-z0-9]/.test(name) || !/[a-z0-9]$/.test(name))
    return 'it must start and end with a letter or digit';
  if (name.includes('..')) return 'it cannot contain two adjacent dots';
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(name)) return 'it cannot look like an IP address';
  return undefined;
}

function parseUrl(text: string): URL {
  try {
    return new URL(text);
  } catch {
    return fail(`not a valid URL; expected ${EXAMPLE}`);
  }
}

function readParameters(search: URLSearchParams): Partial<Record<(typeof PARAMETERS)[number], string>> {
  const out: Partial<Record<(typeof PARAMETERS)[number], string>> = {};
  for (const [name, value] of search) {
    const known = PARAMETERS.find((p) => p === name);
    if (!known) {
      fail(`unknown parameter ${JSON.stringify(name)} in the storage URL; expected ${PARAMETERS.join(', ')}`);
    }
    if (out[known] !== undefined) fail(`the parameter ${known} is given twice`);
    if (value.trim() === '') fail(`the parameter ${known} is empty`);
    out[known] = value;
  }
  return out;
}

function parseEndpoint(raw: string): string {
  let endpoint: URL;
  try {
    endpoint = new URL(raw);
  } catch {
    return fail(`endpoint ${JSON.stringify(raw)} is not a URL; expected like http://127.0.0.1:9000`);
  }
  if (endpoint.protocol !== 'http:' && endpoint.protocol !== 'https:') {
    fail(`endpoint ${JSON.stringify(raw)} must be an http:// or https:// URL`);
  }
  if (endpoint.username !== '' || endpoint.password !== '') {
    fail(
      'credentials do not belong in the endpoint: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead',
    );
  }
  if (endpoint.search !== '' || endpoint.hash !== '') {
    fail(`endpoint ${JSON.stringify(raw)} cannot have a query or fragment (encode "&" in it as %26?)`);
  }
  // `new URL` adds a trailing `/` to a bare origin; the SDK wants it without.
  return endpoint.href.replace(/\/+$/, '');
}

function parseBoolean(name: string, raw: string): boolean {
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  return fail(`the parameter ${name} must be true or false, got ${JSON.stringify(raw)}`);
}

/** `/a/b`, `/a/b/` → `a/b/`; `` or `/` → ``. Segments are percent-decoded and must be valid key segments. */
function parsePrefix(pathname: string): string {
  const trimmed = pathname.replace(/^\//, '').replace(/\/$/, '');
  if (trimmed === '') return '';
  let decoded: string;
  try {
    decoded = trimmed
      .split('/')
      .map((segment) => decodeURIComponent(segment))
      .join('/');
  } catch {
    return fail(`the key prefix ${JSON.stringify(trimmed)} is not valid percent-encoding`);
  }
  const problem = keyProblem(decoded);
  if (problem)
    fail(`the key prefix ${JSON.stringify(decoded)} is not valid: ${problem.replace('key', 'prefix')}`);
  return `${decoded}/`;
}

function fail(message: string): never {
  throw new AppError('CONFIG_INVALID', message);
}
