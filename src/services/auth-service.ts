import { createHash, randomInt, timingSafeEqual } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Catalog } from '../catalog/catalog.js';
import {
  type ApiKey,
  formatApiKey,
  type Principal,
  parseApiKey,
  SCOPES,
  type Scope,
} from '../domain/api-key.js';
import { newId } from '../domain/ids.js';
import { AppError } from '../errors.js';

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const LOWER_ALPHANUMERIC = 'abcdefghijklmnopqrstuvwxyz0123456789';
// Writing last-used on every request would make every read a database write.
const TOUCH_INTERVAL_MS = 60_000;

function randomString(alphabet: string, length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += alphabet[randomInt(alphabet.length)];
  return out;
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** Constant-time equality of two secrets of any length (compares their digests). */
export function secretsEqual(a: string, b: string): boolean {
  return timingSafeEqual(sha256(a), sha256(b));
}

export interface CreatedKey {
  /** The full key: shown once, never stored. */
  key: string;
  record: ApiKey;
}

export const ADMIN_KEY_FILE = 'admin.key';

/** Who may call what: bearer keys, stored hashed, with scopes and an optional project binding. */
export class AuthService {
  private readonly lastTouched = new Map<string, number>();

  constructor(
    private readonly options: {
      catalog: Catalog;
      /** `ASSETPIPE_ADMIN_KEY`: a key with every right that is never stored in the catalog. */
      adminKey?: string | undefined;
      now?: () => Date;
    },
  ) {}

  private now(): Date {
    return this.options.now?.() ?? new Date();
  }

  /** The caller behind an `Authorization` header; 401 for a missing, unknown or revoked key. */
  async authenticate(header: string | undefined): Promise<Principal> {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
    if (!match) {
      throw new AppError('UNAUTHORIZED', 'An API key is required: send it as "Authorization: Bearer <key>".');
    }
    const presented = match[1]!;
    if (this.options.adminKey && secretsEqual(presented, this.options.adminKey)) {
      return { keyId: 'admin', scopes: ['admin'], projectId: null };
    }
    const parsed = parseApiKey(presented);
    const record = parsed ? await this.options.catalog.getApiKeyByPrefix(parsed.prefix) : undefined;
    // Compare even when the record is missing, so timing does not tell whether a prefix exists.
    const expected = record?.secretHash ?? '0'.repeat(64);
    const given = createHash('sha256')
      .update(parsed?.secret ?? '', 'utf8')
      .digest('hex');
    const matches = timingSafeEqual(Buffer.from(expected, 'hex'), Buffer.from(given, 'hex'));
    if (!record || !matches || record.revokedAt) {
      throw new AppError('UNAUTHORIZED', 'The API key is not valid (unknown, mistyped or revoked).');
    }
    this.touch(record.id);
    return { keyId: record.id, scopes: record.scopes, projectId: record.projectId };
  }

  private touch(id: string): void {
    const now = this.now().getTime();
    if (now - (this.lastTouched.get(id) ?? 0) < TOUCH_INTERVAL_MS) return;
    this.lastTouched.set(id, now);
    void this.options.catalog.touchApiKey(id, new Date(now).toISOString()).catch(() => {});
  }

  async createKey(input: {
    name: string;
    scopes: Scope[];
    projectId?: string | null | undefined;
  }): Promise<CreatedKey> {
    const name = input.name.trim();
    if (name === '' || name.length > 100)
      throw new AppError('VALIDATION_FAILED', 'A key needs a name of 1-100 characters.');
    if (input.scopes.length === 0 || input.scopes.some((s) => !SCOPES.includes(s))) {
      throw new AppError('VALIDATION_FAILED', `Scopes must be some of ${SCOPES.join(', ')}.`);
    }
    if (input.projectId && !(await this.options.catalog.getProject(input.projectId))) {
      throw new AppError('PROJECT_NOT_FOUND', `No project ${JSON.stringify(input.projectId)}.`);
    }
    const prefix = randomString(LOWER_ALPHANUMERIC, 12);
    const secret = randomString(ALPHANUMERIC, 40);
    const record: ApiKey = {
      id: newId('key'),
      name,
      prefix,
      secretHash: createHash('sha256').update(secret, 'utf8').digest('hex'),
      scopes: [...new Set(input.scopes)],
      projectId: input.projectId ?? null,
      createdAt: this.now().toISOString(),
      lastUsedAt: null,
      revokedAt: null,
    };
    await this.options.catalog.createApiKey(record);
    return { key: formatApiKey(prefix, secret), record };
  }

  listKeys(): Promise<ApiKey[]> {
    return this.options.catalog.listApiKeys();
  }

  async revokeKey(id: string): Promise<void> {
    if (!(await this.options.catalog.revokeApiKey(id, this.now().toISOString()))) {
      throw new AppError('NOT_FOUND', `No active API key with id ${JSON.stringify(id)}.`);
    }
  }

  /**
   * Makes sure an administrator can get in on a fresh install. With `ASSETPIPE_ADMIN_KEY` set there
   * is nothing to do. Otherwise the first start creates an admin key, keeps it in
   * `<dataDir>/admin.key` (mode 0600) and returns it so that it can be printed once.
   */
  async ensureAdminKey(dataDir: string): Promise<{ key: string; created: boolean } | undefined> {
    if (this.options.adminKey) return undefined;
    const file = join(dataDir, ADMIN_KEY_FILE);
    const existing = await readFile(file, 'utf8').catch(() => undefined);
    if (existing?.trim()) return { key: existing.trim(), created: false };
    const { key, record } = await this.createKey({
      name: 'admin (created at first start)',
      scopes: ['admin'],
    });
    // 'wx': never overwrite a key another process wrote in the meantime; if one did, ours goes.
    try {
      await writeFile(file, `${key}\n`, { mode: 0o600, flag: 'wx' });
    } catch {
      await this.options.catalog.revokeApiKey(record.id, this.now().toISOString());
      const raced = (await readFile(file, 'utf8')).trim();
      return { key: raced, created: false };
    }
    return { key, created: true };
  }
}
