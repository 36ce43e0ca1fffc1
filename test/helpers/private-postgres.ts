import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort, waitFor } from './cli.js';

const execFileAsync = promisify(execFile);

/**
 * A PostgreSQL server of the test's own (initdb into a temp folder, its own port), for tests that
 * stop and start the database: the shared server on 5432 serves every other test file meanwhile.
 * Needs the server binaries (Debian: postgresql-15); as root it runs them as the `postgres` user.
 */
export interface PrivatePostgres {
  url: string;
  port: number;
  /** `pg_ctl stop -m fast`: connections are terminated, new ones refused. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops the server and removes its folder. */
  destroy(): Promise<void>;
}

/** The folder with initdb and pg_ctl, or why there is none. */
export function findPostgresBin(): { dir: string } | { missing: string } {
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return { dir: join(root, versions[0], 'bin') };
  }
  const which = spawnSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' });
  const found = which.stdout.trim();
  if (which.status === 0 && found) return { dir: found.slice(0, found.lastIndexOf('/')) };
  return { missing: `no PostgreSQL server binaries (initdb) under ${root} or on PATH` };
}

/** Runs a server binary (as `postgres` when we are root) without blocking this process's event loop. */
async function run(bin: string, args: string[], asPostgres: boolean): Promise<void> {
  const [cmd, argv] = asPostgres ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  try {
    await execFileAsync(cmd, argv, { encoding: 'utf8', timeout: 60_000 });
  } catch (err) {
    const e = err as { code?: unknown; stderr?: string; stdout?: string };
    throw new Error(
      `${bin} ${args.join(' ')} failed (${String(e.code)}): ${e.stderr ?? ''}${e.stdout ?? ''}`,
    );
  }
}

async function accepts(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

export async function startPrivatePostgres(binDir: string): Promise<PrivatePostgres> {
  const asPostgres = process.getuid?.() === 0; // initdb refuses to run as root
  const dir = await mkdtemp(join(tmpdir(), 'assetpipe-pg-'));
  const data = join(dir, 'data');
  if (asPostgres) {
    const ids = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const gids = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
    await chown(dir, Number(ids.stdout.trim()), Number(gids.stdout.trim()));
    await chmod(dir, 0o700);
  }
  await run(
    join(binDir, 'initdb'),
    ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync'],
    asPostgres,
  );
  const port = await freePort();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const pgCtl = join(binDir, 'pg_ctl');
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`;

  const start = async () => {
    await run(
      pgCtl,
      ['-D', data, '-o', options, '-l', join(dir, 'log'), '-w', '-t', '60', 'start'],
      asPostgres,
    );
    await waitFor(() => accepts(url), 30_000, `the private PostgreSQL on port ${port} to accept connections`);
  };
  const stop = async () => {
    await run(pgCtl, ['-D', data, '-m', 'fast', '-w', '-t', '60', 'stop'], asPostgres);
  };
  await start();
  return {
    url,
    port,
    start,
    stop,
    async destroy() {
      await stop().catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
}
