import type { FastifyInstance } from 'fastify';
import type { Container } from '../../container.js';
import { AppError } from '../../errors.js';

export async function operationsRoutes(
  app: FastifyInstance,
  options: { container: Container; isShuttingDown: () => boolean },
): Promise<void> {
  const { catalog, metrics } = options.container;

  app.get(
    '/healthz',
    { schema: { summary: 'Liveness: the process answers', tags: ['operations'] } },
    async () => ({
      status: 'ok',
    }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        summary: 'Readiness: the catalog answers and the process is not shutting down',
        tags: ['operations'],
      },
    },
    async () => {
      if (options.isShuttingDown()) throw new AppError('SHUTTING_DOWN', 'This instance is shutting down.');
      try {
        await catalog.ping();
      } catch (err) {
        throw new AppError('UNAVAILABLE', 'The catalog database does not answer.', { cause: err });
      }
      return { status: 'ready' };
    },
  );

  app.get(
    '/metrics',
    { schema: { summary: 'Prometheus metrics', tags: ['operations'] } },
    async (_request, reply) => {
      const { contentType, body } = await metrics.render();
      return reply.type(contentType).send(body);
    },
  );
}
