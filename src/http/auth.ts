import type { FastifyInstance, FastifyRequest } from 'fastify';
import { type Principal, requiredScope, type Scope, scopeAllows } from '../domain/api-key.js';
import { AppError } from '../errors.js';
import type { AuthService } from '../services/auth-service.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated caller of a `/v1` route; `null` elsewhere. */
    principal: Principal | null;
  }
  interface FastifyContextConfig {
    /** `false`: the route authenticates by other means (a signed URL). @default true under /v1 */
    auth?: boolean;
    /** Scope the route needs. @default `read` for GET/HEAD, `write` otherwise */
    scope?: Scope;
  }
}

function isApiPath(url: string): boolean {
  return url.startsWith('/v1/') || url === '/v1' || url.startsWith('/uploads/');
}

/**
 * Every `/v1` route needs `Authorization: Bearer <key>` with the route's scope. Runs in `onRequest`,
 * before a body is read, so an unauthenticated upload is refused without receiving it.
 */
export function registerAuth(app: FastifyInstance, auth: AuthService): void {
  app.decorateRequest('principal', null);
  app.addHook('onRequest', async (request) => {
    if (!isApiPath(request.url)) return;
    const config = request.routeOptions.config;
    if (config?.auth === false) return;
    request.principal = await auth.authenticate(request.headers.authorization);
    const needed = config?.scope ?? requiredScope(request.method);
    if (!scopeAllows(request.principal.scopes, needed)) {
      throw new AppError('FORBIDDEN', `This API key lacks the "${needed}" scope needed for this request.`);
    }
  });
}

/** The caller of an authenticated route. */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new AppError('UNAUTHORIZED', 'An API key is required.');
  return request.principal;
}
