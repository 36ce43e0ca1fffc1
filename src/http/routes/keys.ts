import type { FastifyInstance } from 'fastify';
import type { Container } from '../../container.js';
import type { ApiKey, Scope } from '../../domain/api-key.js';
import { requireUnboundAdmin } from '../auth.js';

const problem = { $ref: 'Problem#' } as const;

export function keyResource(key: ApiKey) {
  return {
    id: key.id,
    name: key.name,
    prefix: `ap_${key.prefix}_…`,
    scopes: key.scopes,
    projectId: key.projectId,
    createdAt: key.createdAt,
    lastUsedAt: key.lastUsedAt,
    revokedAt: key.revokedAt,
  };
}

/** API keys, for administrators (the CLI's `assetpipe keys` does the same locally). */
export async function keyRoutes(app: FastifyInstance, options: { container: Container }): Promise<void> {
  const { auth } = options.container;

  app.post<{ Body: { name: string; scopes: Scope[]; projectId?: string | null } }>(
    '/v1/keys',
    {
      config: { scope: 'admin' },
      schema: {
        summary: 'Create an API key; the key is in this response only (admin)',
        tags: ['keys'],
        body: {
          type: 'object',
          required: ['name', 'scopes'],
          additionalProperties: false,
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 100 },
            scopes: {
              type: 'array',
              minItems: 1,
              uniqueItems: true,
              items: { type: 'string', enum: ['read', 'write', 'admin'] },
            },
            projectId: { type: ['string', 'null'], maxLength: 64 },
          },
        },
        response: { 400: problem, 403: problem, 404: problem },
      },
    },
    async (request, reply) => {
      requireUnboundAdmin(request);
      const created = await auth.createKey(request.body);
      return reply.code(201).send({ ...keyResource(created.record), key: created.key });
    },
  );

  app.get(
    '/v1/keys',
    { config: { scope: 'admin' }, schema: { summary: 'List API keys (admin)', tags: ['keys'] } },
    async (request) => {
      requireUnboundAdmin(request);
      return { items: (await auth.listKeys()).map(keyResource) };
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/keys/:id',
    {
      config: { scope: 'admin' },
      schema: { summary: 'Revoke an API key (admin)', tags: ['keys'], response: { 404: problem } },
    },
    async (request, reply) => {
      requireUnboundAdmin(request);
      await auth.revokeKey(request.params.id);
      return reply.code(204).send();
    },
  );
}
