import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ulid } from '../domain/ids.js';

const SCRATCH_NAME = /^(.+)-(\d+)-([0-9A-Z]{26})$/;
const ORPHAN_AGE_MS = 24 * 60 * 60 * 1000;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Creates this process's own scratch folder under `root` (`<host>-<pid>-<ulid>`) and removes the
 * folders of processes on this host that are gone: a worker killed mid-run leaves its copy of an
 * original behind, and several processes share `root`, so only provably dead owners are swept
 * (plus unrecognised folders older than a day).
 */
export async function createProcessScratch(root: string, logger: Logger): Promise<string> {
  await mkdir(root, { recursive: true });
  const host = hostname().replace(/[^A-Za-z0-9.]/g, '_');
  const entries = await readdir(root).catch(() => [] as string[]);
  for (const entry of entries) {
    const match = SCRATCH_NAME.exec(entry);
    let stale: boolean;
    if (match) {
      stale = match[1] === host && Number(match[2]) !== process.pid && !isAlive(Number(match[2]));
    } else {
      const info = await stat(join(root, entry)).catch(() => undefined);
      stale = info !== undefined && Date.now() - info.mtimeMs > ORPHAN_AGE_MS;
    }
    if (stale) {
      await rm(join(root, entry), { recursive: true, force: true }).catch(() => {});
      logger.info({ folder: entry }, 'removed the scratch folder of a stopped process');
    }
  }
  const own = join(root, `${host}-${process.pid}-${ulid()}`);
  await mkdir(own, { recursive: true });
  return own;
}
