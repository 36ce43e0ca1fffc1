import { mkdir } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { join } from 'node:path';
import { type Locker, Server, type Upload } from '@tus/server';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Container } from '../../container.js';
import type { Principal } from '../../domain/api-key.js';
import { isId, newId } from '../../domain/ids.js';
import { AppError } from '../../errors.js';
import { ThrottledLog } from '../../lib/throttled-log.js';
import type { FinishedTusUpload, NewTusUpload } from '../../services/upload-service.js';
import { problemFor, sendProblem, toAppError } from '../problem.js';
import { type Completion, Completions } from '../tus-completions.js';
import { LeaseLocker, type LeaseLockerOptions } from '../tus-lease-locker.js';
import { createTusStorage } from '../tus-storage.js';

/**
 * tus 1.0 (https://tus.io/protocols/resumable-upload) at `/v1/uploads/tus`, served by @tus/server
 * with its FileStore under `<dataDir>/uploads/tus`.
 *
 * Extensions: creation, creation-with-upload, creation-defer-length, termination, expiration.
 * Not checksum: @tus/file-store 2.x does not implement it (its extension list has no `checksum`
 * and @tus/server never reads `Upload-Checksum`), so that header is ignored as the protocol allows
 * for a server that does not announce the extension. Whole-file integrity is the `checksum`
 * metadata (`sha256:<hex>`), which the finish hook verifies.
 */
export const TUS_PATH = '/v1/uploads/tus';
/** Response header naming the asset a completed upload became (also in the JSON body). */
export const ASSET_ID_HEADER = 'Upload-Asset-Id';

const TUS_RESUMABLE = '1.0.0';
const PROBLEM_TYPE = 'application/problem+json; charset=utf-8';
const DEFAULT_CLEANUP_INTERVAL_MS = 15 * 60_000;

export interface TusHooks {
  /** Validate and record a new upload before any byte is accepted; throw AppError to refuse (its status + message go back to the client). */
  start(upload: NewTusUpload): Promise<void>;
  /** The last byte arrived: create the asset (exactly once per uploadId, even if called again) and return it. */
  finish(upload: FinishedTusUpload): Promise<{ id: string; status: string }>;
  /** The client terminated the upload (DELETE). */
  terminate(uploadId: string): Promise<void>;
  /** The principal of this request (set by the auth layer); throws AppError('UNAUTHORIZED') if none. */
  principalOf(request: FastifyRequest): Principal;
  /**
   * May this caller touch this existing upload (HEAD, PATCH, DELETE)? Throw AppError (e.g.
   * UPLOAD_NOT_FOUND for another project's upload) to refuse. Optional: without it any valid key may.
   */
  authorize?(uploadId: string, principal: Principal): Promise<void>;
}

/** Handles for operations and tests. */
export interface TusControls {
  /** Runs one expiry sweep now: removes expired uploads (and their completion records); returns how many. */
  cleanUpExpired(): Promise<number>;
  /** The FileStore directory (`<dataDir>/uploads/tus`). */
  directory: string;
}

export interface TusRouteOptions {
  container: Container;
  hooks: TusHooks;
  /** An upload not finished this long after its creation is gone (410, then removed). @default ASSETPIPE_UPLOAD_EXPIRY_SEC */
  expirationMs?: number;
  /** How often expired uploads are swept. @default a quarter of the expiration, at most 15 min */
  cleanupIntervalMs?: number;
  /** Receives the controls once the route is set up. */
  onControls?: (controls: TusControls) => void;
  /** Timing of the cross-node upload locks (S3 storage only); tests shorten it. */
  leases?: Pick<LeaseLockerOptions, 'leaseMs' | 'pollMs' | 'acquireTimeoutMs'>;
}

/** Per request: what the tus hooks need from Fastify, found again from the raw Node request. */
interface RequestState {
  request: FastifyRequest;
  principal: Principal | undefined;
  /** Set when the response body is a problem document, so that its Content-Type says so. */
  problem: boolean;
}

/** Upload ids are ours (`upl_<ulid>`): anything else is not an upload, whatever the path holds. */
function uploadIdOf(url: string): string | undefined {
  let last: string;
  try {
    last = decodeURIComponent(new URL(url, 'http://localhost').pathname.split('/').pop() ?? '');
  } catch {
    return undefined;
  }
  return isId(last, 'upl') ? last : undefined;
}

/**
 * Refusals that mean the finished bytes will never become an asset, so the upload can go: a 4xx,
 * except those about the request rather than the bytes. UPLOAD_CONFLICT: another request is
 * completing this upload and reads its bytes now. RATE_LIMITED, UNAUTHORIZED, FORBIDDEN: this
 * caller, now, was refused. A 5xx (an outage, a bug) is never final: the client may retry.
 */
function isFinalRefusal(err: unknown): boolean {
  const appError = toAppError(err);
  if (appError.status < 400 || appError.status >= 500) return false;
  return !['UPLOAD_CONFLICT', 'RATE_LIMITED', 'UNAUTHORIZED', 'FORBIDDEN'].includes(appError.code);
}

/** An error @tus/server knows how to answer (`{ status_code, body }`). */
function isTusError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && 'status_code' in err;
}

/** @tus/server writes the head with a raw header array; give our problem bodies their content type. */
function labelProblemBodies(res: ServerResponse, state: RequestState): void {
  const writeHead = res.writeHead;
  res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
    if (state.problem) {
      const headers = args[args.length - 1];
      if (Array.isArray(headers)) {
        for (let i = 0; i + 1 < headers.length; i += 2) {
          if (String(headers[i]).toLowerCase() === 'content-type') headers[i + 1] = PROBLEM_TYPE;
        }
      } else if (headers && typeof headers === 'object') {
        for (const key of Object.keys(headers)) {
          if (key.toLowerCase() === 'content-type') delete (headers as Record<string, unknown>)[key];
        }
      }
      this.setHeader('Content-Type', PROBLEM_TYPE);
    }
    return Reflect.apply(writeHead, this, args) as ServerResponse;
  } as ServerResponse['writeHead'];
}

/** Sends a problem from the Fastify side (before tus sees the request), with the tus version header. */
function refuseEarly(request: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply {
  reply.header('Tus-Resumable', TUS_RESUMABLE);
  return sendProblem(request, reply, err);
}

export async function tusRoutes(app: FastifyInstance, options: TusRouteOptions): Promise<void> {
  const { container, hooks } = options;
  const { config } = container;
  const directory = join(config.dataDir, 'uploads', 'tus');
  const completions = new Completions(join(config.dataDir, 'uploads', 'tus-completed'), (err, uploadId) =>
    app.log.warn({ err, uploadId }, 'could not record a tus completion'),
  );
  await mkdir(directory, { recursive: true });
  await mkdir(completions.directory, { recursive: true });

  const expirationMs = options.expirationMs ?? config.uploadExpirySec * 1000;
  // Keyed by the raw Node request, which @tus/server hands its hooks as `req.runtime.node.req`.
  const states = new WeakMap<object, RequestState>();

  /** The route state of the request a tus hook is running for. */
  const stateOf = (req: { runtime?: { node?: { req: object } } }): RequestState => {
    const raw = req.runtime?.node?.req;
    const state = raw ? states.get(raw) : undefined;
    if (!state) throw new Error('tus hook called for a request that did not come through the tus route');
    return state;
  };

  const principalOf = (state: RequestState): Principal => {
    if (!state.principal) throw new AppError('UNAUTHORIZED', 'An API key is required.');
    return state.principal;
  };

  /** An error from a hook as @tus/server wants it thrown: `{ status_code, body }`, body a problem document. */
  const refusal = (state: RequestState, err: unknown): { status_code: number; body: string } => {
    const appError = toAppError(err);
    const { request } = state;
    if (appError.status >= 500) request.log.error({ err: appError.cause ?? appError }, 'tus request failed');
    else request.log.info({ code: appError.code, detail: appError.message }, 'tus request refused');
    state.problem = true;
    return {
      status_code: appError.status,
      body: JSON.stringify(problemFor(appError, request.url.split('?')[0])),
    };
  };

  const storage = await createTusStorage(config.storage, directory, expirationMs);
  const { datastore } = storage;
  // Uploads other nodes see need locks other nodes see; on local disk, @tus/server's memory locker.
  // Every held lock renews twice a second: while the catalog is away, one line per 10 s says so.
  const lockLog = new ThrottledLog(app.log, 10_000);
  const leases = storage.shared
    ? new LeaseLocker(container.catalog, {
        ...options.leases,
        onRenewError: (err, name) =>
          lockLog.report(
            'warn',
            'tus lock renewal',
            { err, lock: name },
            'could not renew a tus upload lock',
          ),
        onReleaseError: (err, name) =>
          lockLog.report(
            'warn',
            'tus lock release',
            { err, lock: name },
            'could not release a tus upload lock; it expires by itself',
          ),
      })
    : undefined;
  /** Per request: the lease locker's failures (the catalog is away) become problems, as the hooks' do. */
  const locker =
    leases &&
    ((req: { runtime?: { node?: { req: object } } }): Locker => ({
      newLock(id) {
        const lock = leases.newLock(id);
        return {
          lock: (signal, requestRelease) =>
            lock.lock(signal, requestRelease).catch((err: unknown) => {
              throw isTusError(err) ? err : refusal(stateOf(req), err);
            }),
          unlock: () => lock.unlock(),
        };
      },
    }));
  const server = new Server({
    ...(locker ? { locker } : {}),
    path: TUS_PATH,
    datastore,
    maxSize: config.maxUploadBytes,
    namingFunction: () => newId('upl'),
    getFileIdFromRequest: (req) => uploadIdOf(req.url),
    // Behind a proxy: an absolute URL only when ASSETPIPE_PUBLIC_URL says where we are reachable,
    // otherwise a relative one, which the client resolves against the URL it used (RFC 9110 §10.2.2).
    // Forwarded headers are not trusted.
    generateUrl: (_req, { path, id }) => `${config.publicUrl ?? ''}${path}/${id}`,
    exposedHeaders: [ASSET_ID_HEADER],

    async onUploadCreate(req, upload: Upload) {
      const state = stateOf(req);
      try {
        await hooks.start({
          uploadId: upload.id,
          size: upload.size,
          metadata: { ...upload.metadata },
          principal: principalOf(state),
        });
      } catch (err) {
        throw refusal(state, err);
      }
      return {};
    },

    async onUploadFinish(req, upload: Upload) {
      const state = stateOf(req);
      let completion: Completion;
      try {
        const principal = principalOf(state);
        completion = await completions.complete(upload.id, () =>
          hooks.finish({
            uploadId: upload.id,
            open: () => storage.open(upload),
            size: upload.size ?? upload.offset,
            metadata: { ...upload.metadata },
            principal,
          }),
        );
      } catch (err) {
        const refused = refusal(state, err);
        // Refused for good (bad or unwanted bytes, a limit): the upload can never become an asset,
        // and on S3 it is a full copy of the file; free it now. Not on a 5xx (an outage, a bug)
        // nor on a refusal that is about this request rather than these bytes: the client retries.
        if (isFinalRefusal(err)) {
          await storage.release(upload.id).catch((releaseErr: unknown) => {
            state.request.log.warn(
              { err: releaseErr, uploadId: upload.id },
              'could not free a refused tus upload',
            );
          });
        }
        throw refused;
      }
      state.request.log.info({ uploadId: upload.id, assetId: completion.assetId }, 'tus upload completed');
      await storage.release(upload.id).catch((err: unknown) => {
        state.request.log.warn({ err, uploadId: upload.id }, 'could not free a completed tus upload');
      });
      return {
        // tus answers a PATCH with 204, which has no body; 200 carries it (tus clients accept any 2xx).
        // A creation-with-upload that completes keeps its 201 and Location.
        ...(req.method === 'PATCH' ? { status_code: 200 } : {}),
        headers: { [ASSET_ID_HEADER]: completion.assetId, 'Content-Type': 'application/json; charset=utf-8' },
        body: JSON.stringify({ assetId: completion.assetId, status: completion.status }),
      };
    },

    async onIncomingRequest(req, uploadId) {
      if (req.method !== 'DELETE') return;
      const state = stateOf(req);
      // An unknown or expired upload: tus's own 404/410 error, and the hook is not bothered.
      await datastore.getUpload(uploadId);
      // An upload that became an asset has nothing left to terminate: DELETE only frees its bytes.
      if (await completions.read(uploadId)) return;
      try {
        await hooks.terminate(uploadId);
      } catch (err) {
        throw refusal(state, err);
      }
    },

    onResponseError(req, err) {
      const status = 'status_code' in err ? err.status_code : 500;
      if (status >= 500) {
        const log = states.get(req.runtime?.node?.req ?? {})?.request.log ?? app.log;
        log.error({ err }, 'tus request failed');
      }
      return undefined;
    },
  });

  // --- expiration -----------------------------------------------------------------------------
  let sweeping: Promise<number> | undefined;
  const cleanUpExpired = (): Promise<number> => {
    sweeping ??= (async () => {
      try {
        const removed = await storage.sweepExpired(expirationMs);
        // Leftover leases are harmless (they expired): a failure here must not stop the sweep.
        await leases?.sweepExpired().catch((err: unknown) => app.log.warn({ err }, 'tus lock sweep failed'));
        await completions.sweep((uploadId) => storage.exists(uploadId), expirationMs);
        if (removed > 0) app.log.info({ removed }, 'expired tus uploads removed');
        return removed;
      } finally {
        sweeping = undefined;
      }
    })();
    return sweeping;
  };
  const intervalMs =
    options.cleanupIntervalMs ?? Math.max(1000, Math.min(DEFAULT_CLEANUP_INTERVAL_MS, expirationMs / 4));
  const timer = setInterval(() => {
    cleanUpExpired().catch((err: unknown) => app.log.warn({ err }, 'tus expiry sweep failed'));
  }, intervalMs);
  timer.unref();
  app.addHook('onClose', async () => clearInterval(timer));
  options.onControls?.({ cleanUpExpired, directory });

  // --- Fastify mounting -----------------------------------------------------------------------
  // Only in this plugin's scope: no parser at all, so Fastify never reads a body here and the raw
  // request reaches tus untouched (`application/offset+octet-stream`, or anything else a client sends).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));

  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    const wildcard = (request.params as { '*'?: string })['*'];
    if (wildcard !== undefined && !isId(wildcard, 'upl')) {
      return refuseEarly(
        request,
        reply,
        new AppError('UPLOAD_NOT_FOUND', `No upload ${JSON.stringify(wildcard.slice(0, 100))}.`),
      );
    }
    let principal: Principal | undefined;
    if (request.method !== 'OPTIONS') {
      try {
        principal = hooks.principalOf(request);
        if (wildcard !== undefined && hooks.authorize) await hooks.authorize(wildcard, principal);
      } catch (err) {
        return refuseEarly(request, reply, err);
      }
    }
    if (wildcard !== undefined && (request.method === 'HEAD' || request.method === 'PATCH')) {
      // A completed upload names its asset on every later answer, even a 409 for a repeated last chunk.
      const completion = await completions.read(wildcard).catch(() => undefined);
      if (completion) reply.raw.setHeader(ASSET_ID_HEADER, completion.assetId);
    }

    const state: RequestState = { request, principal, problem: false };
    states.set(request.raw, state);
    labelProblemBodies(reply.raw, state);
    reply.hijack();
    try {
      await server.handle(request.raw, reply.raw);
    } catch (err) {
      request.log.error({ err }, 'tus handler failed');
      if (!reply.raw.headersSent) {
        reply.raw.statusCode = 500;
        reply.raw.end();
      } else {
        reply.raw.destroy();
      }
    } finally {
      states.delete(request.raw);
    }
  };

  const schema = (summary: string) => ({ summary, tags: ['uploads'] });
  app.route({
    method: 'POST',
    url: TUS_PATH,
    schema: schema('tus: create an upload (creation, creation-with-upload, creation-defer-length)'),
    handler,
  });
  app.route({
    // No GET: @tus/server would serve the raw bytes of a finished upload; the asset API serves originals.
    method: ['HEAD', 'PATCH', 'DELETE'],
    url: `${TUS_PATH}/*`,
    schema: schema('tus: offset (HEAD), append (PATCH), terminate (DELETE)'),
    handler,
  });
  // OPTIONS tells what the server supports; browsers send it without credentials (CORS preflight).
  app.route({
    method: 'OPTIONS',
    url: TUS_PATH,
    config: { auth: false },
    schema: schema('tus: server capabilities'),
    handler,
  });
  app.route({
    method: 'OPTIONS',
    url: `${TUS_PATH}/*`,
    config: { auth: false },
    schema: schema('tus: server capabilities'),
    handler,
  });
}
