import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config.js';
import type { SigningKey } from '../domain/signing.js';

export const SIGNING_KEY_FILE = 'signing.key';

/**
 * The keys that sign the URLs assetpipe hands out. `ASSETPIPE_SIGNING_SECRET` may list several
 * secrets separated by commas: the first signs, all verify (rotation). Without it, one is
 * generated on first start and kept in the data directory (fine for one machine; every API node of
 * a scaled-out deployment must be given the same secret).
 */
export async function loadSigningKeys(
  config: Pick<Config, 'signingSecret' | 'dataDir'>,
): Promise<SigningKey[]> {
  if (config.signingSecret) {
    return config.signingSecret
      .split(',')
      .map((secret) => secret.trim())
      .filter(Boolean)
      .map((secret) => ({ id: keyId(secret), secret }));
  }
  const file = join(config.dataDir, SIGNING_KEY_FILE);
  let secret = (await readFile(file, 'utf8').catch(() => '')).trim();
  if (!secret) {
    const fresh = randomBytes(32).toString('base64url');
    try {
      await writeFile(file, `${fresh}\n`, { mode: 0o600, flag: 'wx' });
      secret = fresh;
    } catch {
      secret = (await readFile(file, 'utf8')).trim(); // another process wrote it first
    }
  }
  return [{ id: keyId(secret), secret }];
}

/** A key's id comes from its secret, so reordering the list during a rotation changes nothing. */
function keyId(secret: string): string {
  return createHash('sha256').update(secret).digest('hex').slice(0, 8);
}
