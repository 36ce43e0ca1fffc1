import multipart from '@fastify/multipart';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Container } from './container.js';
import { newId } from './domain/ids.js';
import { AppError } from './errors.js';
import { sendProblem } from './http/problem.js';
import { assetRoutes } from './http/routes/assets.js';
import { operationsRoutes } from './http/routes/operations.js';
import { webRoutes } from './http/routes/web.js';
import { assetSchema, problemSchema, runSchema } from './http/schemas.js';
import { VERSION } from './version.js';

export interface AppOptions {
  /** `/readyz` answers 503 once this returns true. */
  isShuttingDown?: () => boolean;
}

/** Builds the HTTP app without listening, so tests drive it with `inject()`. */
export async function buildApp(container: Container, options: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: container.logger.child({ component: 'http' }) as FastifyBaseLogger,
    genReqId: () => newId('req'),
    requestIdLogLabel: 'requestId',
    disableRequestLogging: false,
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
          'Self-hosted media pipeline. Every error is an RFC 9457 problem body (`application/problem+json`) with a stable `code`.',
      },
      tags: [
        { name: 'assets', description: 'Upload, catalog and download' },
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
  return app;
}
