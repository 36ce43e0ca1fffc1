import multipart from '@fastify/multipart';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import type { Container } from './container.js';
import { newId } from './domain/ids.js';
import { AppError } from './errors.js';
import { principalOf, registerAuth } from './http/auth.js';
import { sendProblem } from './http/problem.js';
import { assetRoutes } from './http/routes/assets.js';
import { checkRoutes } from './http/routes/check.js';
import { imgRoutes } from './http/routes/img.js';
import { imgSignRoutes } from './http/routes/img-sign.js';
import { keyRoutes } from './http/routes/keys.js';
import { operationsRoutes } from './http/routes/operations.js';
import { projectRoutes } from './http/routes/projects.js';
import { similarRoutes } from './http/routes/similar.js';
import { streamRoutes } from './http/routes/stream.js';
import { type TusRouteOptions, tusRoutes } from './http/routes/tus.js';
import { uploadRoutes } from './http/routes/uploads.js';
import { webRoutes } from './http/routes/web.js';
import { assetSchema, problemSchema, runSchema } from './http/schemas.js';
import { VERSION } from './version.js';

export interface AppOptions {
  /** `/readyz` answers 503 once this returns true. */
  isShuttingDown?: () => boolean;
  /** tus settings: `hooks` replaces the upload service's (route-level tests), the rest is passed on. */
  tus?: Partial<Pick<TusRouteOptions, 'hooks' | 'expirationMs' | 'cleanupIntervalMs' | 'onControls'>>;
}

/** Builds the HTTP app without listening, so tests drive it with `inject()`. */
export async function buildApp(container: Container, options: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: container.logger.child({ component: 'http' }) as FastifyBaseLogger,
    genReqId: () => newId('req'),
    // Probes and scrapes every few seconds would drown the request log.
    logController: new LogController({
      requestIdLogLabel: 'requestId',
      disableRequestLogging: (request) =>
        request.url === '/healthz' || request.url === '/readyz' || request.url === '/metrics',
    }),
    // Uploads are streamed by the multipart parser, which has its own limits; other bodies are small.
    bodyLimit: 1024 * 1024,
    routerOptions: { maxParamLength: 200 },
    // A request that fails at the router (bad percent-encoding in the path) still gets a problem body.
    frameworkErrors: (err, request, reply) => {
      sendProblem(request, reply, err);
    },
  });

  app.addSchema(problemSchema);
  app.addSchema(assetSchema);
  app.addSchema(runSchema);

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'assetpipe API',
        version: VERSION,
        description:
          'Self-hosted media pipeline. Every `/v1` route needs `Authorization: Bearer <API key>`. Every error is an RFC 9457 problem body (`application/problem+json`) with a stable `code`. Any route may answer `503` with code `UNAVAILABLE` and a `Retry-After` header (seconds) while a service assetpipe depends on (PostgreSQL, the job queue, the object store) cannot be reached; retry the same request after that time.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
      tags: [
        { name: 'assets', description: 'Upload, catalog and download' },
        { name: 'uploads', description: 'Resumable (tus) and S3-style multipart uploads' },
        { name: 'projects', description: 'Projects, their delivery settings and limits' },
        { name: 'keys', description: 'API keys' },
        { name: 'images', description: 'On-demand image transforms (public, signed URLs) and URL signing' },
        {
          name: 'delivery',
          description:
            'Stream packages of videos and audio (HLS, DASH, poster, storyboard; public, signed prefix)',
        },
        { name: 'operations', description: 'Health, readiness and metrics' },
      ],
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  await app.register(multipart, {
    // Our blob store enforces ASSETPIPE_MAX_UPLOAD_BYTES while streaming; busboy's own limit sits
    // just above it so that the store's clearer error is the one a client sees.
    limits: {
      fileSize: container.config.maxUploadBytes + 1,
      files: 1,
      fields: 20,
      fieldSize: 64 * 1024,
      parts: 25,
    },
  });

  registerAuth(app, container.auth);
  if (container.config.rateLimitPerMinute > 0) {
    // With Redis (scaled out), every API node counts against the same budget; otherwise each node
    // counts its own requests, so N nodes behind a balancer allow up to N times the limit.
    const redis = container.config.redisUrl
      ? new (await import('ioredis')).Redis(container.config.redisUrl, {
          connectTimeout: 2000,
          maxRetriesPerRequest: 1,
        })
      : undefined;
    redis?.on('error', () => {}); // reconnects by itself; skipOnError lets requests through meanwhile
    if (redis) app.addHook('onClose', async () => void redis.disconnect());
    await app.register(rateLimit, {
      ...(redis ? { redis, nameSpace: 'assetpipe:rate:', skipOnError: true } : {}),
      // After authentication, so the budget belongs to the key, not to a shared address.
      hook: 'preHandler',
      max: container.config.rateLimitPerMinute,
      timeWindow: 60_000,
      keyGenerator: (request) => request.principal?.keyId ?? request.ip,
      allowList: (request) => !request.principal,
      errorResponseBuilder: (_request, context) =>
        new AppError('RATE_LIMITED', `Too many requests for this API key; retry in ${context.after}.`),
    });
  }

  // Graceful close: requests in flight finish, then their keep-alive connections close. Fastify
  // 5.12 closes only the connections idle at the moment close() starts (fastify#7044); one whose
  // request ends later stayed open until keepAliveTimeout (72 s), holding up shutdown and restarts.
  app.addHook('preClose', (done) => {
    if (app.server.listening) {
      const sweep = setInterval(() => app.server.closeIdleConnections(), 100);
      sweep.unref();
      app.server.once('close', () => clearInterval(sweep));
    }
    done();
  });

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    container.metrics.observeHttp(request.method, route, reply.statusCode, reply.elapsedTime / 1000);
  });

  app.setErrorHandler((err, request, reply) => sendProblem(request, reply, err));
  app.setNotFoundHandler((request, reply) =>
    sendProblem(
      request,
      reply,
      new AppError('ROUTE_NOT_FOUND', `No route ${request.method} ${request.url.split('?')[0]}.`),
    ),
  );

  await app.register(webRoutes);
  await app.register(operationsRoutes, {
    container,
    isShuttingDown: options.isShuttingDown ?? (() => false),
  });
  await app.register(assetRoutes, { container });
  await app.register(similarRoutes, { container });
  await app.register(uploadRoutes, { container });
  const { uploads } = container;
  await app.register(tusRoutes, {
    container,
    ...options.tus,
    hooks: options.tus?.hooks ?? {
      start: (upload) => uploads.startTus(upload),
      finish: (upload) => uploads.finishTus(upload),
      terminate: (uploadId) => uploads.terminateTus(uploadId),
      authorize: (uploadId, principal) => uploads.authorizeTus(uploadId, principal),
      principalOf,
    },
  });
  await app.register(projectRoutes, { container });
  await app.register(keyRoutes, { container });
  await app.register(imgRoutes, { container });
  await app.register(streamRoutes, { container });
  await app.register(checkRoutes, { container });
  await app.register(imgSignRoutes, { container });
  return app;
}
