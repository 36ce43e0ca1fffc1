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

/** Routes that need a key, by their pattern (never by the raw URL: see registerAuth). */
function isApiRoute(pattern: string): boolean {
  return pattern.startsWith('/v1/') || pattern === '/v1' || pattern.startsWith('/uploads/');
}

/**
 * Every `/v1` route needs `Authorization: Bearer <key>` with the route's scope. Runs in `onRequest`,
 * before a body is read, so an unauthenticated upload is refused without receiving it.
 *
 * The decision is made on the route the router matched, not on `request.url`: the router decodes
 * percent-escapes (`/%761/keys` reaches `/v1/keys`), so a check on the raw URL could be walked past.
 */
export function registerAuth(app: FastifyInstance, auth: AuthService): void {
  app.decorateRequest('principal', null);
  app.addHook('onRequest', async (request) => {
    const pattern = request.routeOptions.url;
    if (pattern === undefined || !isApiRoute(pattern)) return;
    const config = request.routeOptions.config;
    if (config?.auth === false) return;
    request.principal = await auth.authenticate(request.headers.authorization);
    const needed = config?.scope ?? requiredScope(request.method);
    if (!scopeAllows(request.principal.scopes, needed)) {
      throw new AppError('FORBIDDEN', `This API key lacks the "${needed}" scope needed for this request.`);
    }
  });
}

/** Key management and new projects are for administrators of the whole installation only. */
export function requireUnboundAdmin(request: FastifyRequest): Principal {
  const principal = principalOf(request);
  if (!scopeAllows(principal.scopes, 'admin') || principal.projectId !== null) {
    throw new AppError('FORBIDDEN', 'Only an admin key that is not bound to a project may do this.');
  }
  return principal;
}

/** The caller of an authenticated route. */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new AppError('UNAUTHORIZED', 'An API key is required.');
  return request.principal;
}
