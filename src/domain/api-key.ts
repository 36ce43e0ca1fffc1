export type Scope = 'read' | 'write' | 'admin';
export const SCOPES: readonly Scope[] = ['read', 'write', 'admin'];

/** `admin` includes `write`, which includes `read`. */
export function scopeAllows(granted: readonly Scope[], needed: Scope): boolean {
  const rank: Record<Scope, number> = { read: 1, write: 2, admin: 3 };
  return granted.some((scope) => rank[scope] >= rank[needed]);
}

/** A stored API key. Only a hash of the secret is kept; the secret is shown once, at creation. */
export interface ApiKey {
  id: string;
  name: string;
  /** Public part of the key, used to find the record (`ap_<prefix>_<secret>`). */
  prefix: string;
  /** sha256 of the secret, hex. */
  secretHash: string;
  scopes: Scope[];
  /** Bound to one project, or `null` for all projects. */
  projectId: string | null;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

/** Who is calling: resolved from the bearer key once per request. */
export interface Principal {
  keyId: string;
  scopes: Scope[];
  /** The only project this caller may touch, or `null` for all. */
  projectId: string | null;
}

// Keys look like `ap_<prefix>_<secret>`: the prefix finds the record, the secret is compared by hash.
const KEY_PATTERN = /^ap_([a-z0-9]{12})_([A-Za-z0-9]{40})$/;

/** Splits a presented key into its lookup prefix and secret, or `undefined` if it has the wrong shape. */
export function parseApiKey(raw: string): { prefix: string; secret: string } | undefined {
  const match = KEY_PATTERN.exec(raw);
  return match ? { prefix: match[1]!, secret: match[2]! } : undefined;
}

export function formatApiKey(prefix: string, secret: string): string {
  return `ap_${prefix}_${secret}`;
}

/** The scopes a request needs: reading is `read`, changing is `write`, keys and projects are `admin`. */
export function requiredScope(method: string): Scope {
  return method === 'GET' || method === 'HEAD' || method === 'OPTIONS' ? 'read' : 'write';
}
