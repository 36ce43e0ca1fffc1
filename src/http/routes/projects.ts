import type { FastifyInstance } from 'fastify';
import type { Container } from '../../container.js';
import type { Project } from '../../domain/project.js';
import { principalOf, requireUnboundAdmin } from '../auth.js';

const problem = { $ref: 'Problem#' } as const;
const nullableInt = { type: ['integer', 'null'], minimum: 1 } as const;
const limitsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    maxUploadBytes: nullableInt,
    maxTotalBytes: nullableInt,
    maxVideoDurationSec: { type: ['number', 'null'], exclusiveMinimum: 0 },
    allowedTypes: {
      type: ['array', 'null'],
      items: { type: 'string', enum: ['image', 'video', 'audio'] },
      uniqueItems: true,
      minItems: 1,
    },
  },
} as const;

const settings = {
  name: { type: 'string', minLength: 1, maxLength: 200 },
  visibility: { type: 'string', enum: ['public', 'private'] },
  duplicatePolicy: { type: 'string', enum: ['reject', 'keep', 'link'] },
  limits: limitsSchema,
  exposeGps: {
    type: 'boolean',
    description:
      'Keep GPS coordinates from EXIF on asset records (derived images never carry them). Default false.',
  },
} as const;

type ProjectBody = {
  id: string;
  name?: string;
  visibility?: Project['visibility'];
  duplicatePolicy?: Project['duplicatePolicy'];
  limits?: Partial<Project['limits']>;
  exposeGps?: boolean;
};

export async function projectRoutes(app: FastifyInstance, options: { container: Container }): Promise<void> {
  const { projects } = options.container;

  app.post<{ Body: ProjectBody }>(
    '/v1/projects',
    {
      config: { scope: 'admin' },
      schema: {
        summary: 'Create a project (admin)',
        tags: ['projects'],
        body: {
          type: 'object',
          required: ['id'],
          additionalProperties: false,
          properties: { id: { type: 'string', maxLength: 64 }, ...settings },
        },
        response: { 400: problem, 403: problem, 409: problem },
      },
    },
    async (request, reply) => {
      requireUnboundAdmin(request);
      return reply.code(201).send(await projects.create(request.body));
    },
  );

  app.get(
    '/v1/projects',
    { schema: { summary: 'Projects this key can see', tags: ['projects'] } },
    async (request) => ({
      items: await projects.list(principalOf(request)),
    }),
  );

  app.get<{ Params: { id: string } }>(
    '/v1/projects/:id',
    {
      schema: {
        summary: 'A project with its settings and usage',
        tags: ['projects'],
        response: { 404: problem },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const project = await projects.readable(principal, request.params.id);
      return { ...project, usage: await projects.usage(principal, project.id) };
    },
  );

  app.patch<{ Params: { id: string }; Body: Omit<ProjectBody, 'id'> }>(
    '/v1/projects/:id',
    {
      config: { scope: 'admin' },
      schema: {
        summary:
          'Change settings: delivery visibility, duplicate policy, limits (null clears a limit), GPS on asset records (admin)',
        tags: ['projects'],
        body: { type: 'object', additionalProperties: false, properties: settings },
        response: { 400: problem, 403: problem, 404: problem },
      },
    },
    async (request) => projects.update(principalOf(request), request.params.id, request.body ?? {}),
  );
}
