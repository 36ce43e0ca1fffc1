import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TEST_ADMIN_KEY } from './auth.js';

/** The repository root (this file lives in test/helpers/). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The built CLI entry point. */
export const MAIN = join(ROOT, 'dist', 'main.js');

export const PACKAGE_VERSION: string = (
  JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
).version;

// ---------------------------------------------------------------------------------------------
// Waiting

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Polls `predicate` until it returns a truthy value (which is returned) or `timeoutMs` passes, then
 * throws `timed out after N ms waiting for <what>` with the last error the predicate threw, if any.
 */
export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  timeoutMs: number,
  what: string,
  intervalMs = 100,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await predicate();
      if (value) return value as NonNullable<T>;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why =
        lastError === undefined
          ? ''
          : ` (last error: ${lastError instanceof Error ? lastError.message : String(lastError)})`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await sleep(intervalMs);
  }
}

// ---------------------------------------------------------------------------------------------
// Building dist/ once per test file

const LOCK_DIR = join(
  tmpdir(),
  `assetpipe-e2e-setup-${Buffer.from(ROOT).toString('base64url').slice(-40)}.lock`,
);
let built: Promise<void> | undefined;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A cross-process lock, so that two test files (vitest forks) never run the build at once. */
async function withSetupLock<T>(fn: () => T): Promise<T> {
  await waitFor(
    async () => {
      try {
        await mkdir(LOCK_DIR);
        await writeFile(join(LOCK_DIR, 'pid'), String(process.pid));
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        // A holder that died without releasing (killed test run) leaves a stale lock.
        const owner = Number(await readFile(join(LOCK_DIR, 'pid'), 'utf8').catch(() => 'NaN'));
        if (Number.isInteger(owner) && !isAlive(owner)) await rm(LOCK_DIR, { recursive: true, force: true });
        return false;
      }
    },
    300_000,
    'the lock guarding `sh scripts/setup.sh`',
    200,
  );
  try {
    return fn();
  } finally {
    await rm(LOCK_DIR, { recursive: true, force: true });
  }
}

/**
 * Runs `sh scripts/setup.sh` (which builds dist/ when sources changed) once per test file.
 * Call it from `beforeAll` with a generous hook timeout: a cold build takes ~20 s.
 */
export function ensureBuilt(): Promise<void> {
  built ??= withSetupLock(() => {
    const result = spawnSync('sh', ['scripts/setup.sh'], { cwd: ROOT, encoding: 'utf8', timeout: 240_000 });
    if (result.status !== 0) {
      throw new Error(
        `sh scripts/setup.sh failed (status ${result.status}, signal ${result.signal}):\n${result.stderr}\n${result.stdout}`,
      );
    }
  });
  return built;
}

// ---------------------------------------------------------------------------------------------
// Ports

/** A port that was free a moment ago on 127.0.0.1 (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('could not read the port of a listening socket'));
        return;
      }
      server.close(() => resolvePort(address.port));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Child processes

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export type LogLine = Record<string, unknown> & { msg?: string; level?: number };

/** A running `node dist/main.js ...` with its output collected. */
export class CliProcess {
  readonly pid: number;
  readonly exited: Promise<ExitInfo>;
  exit: ExitInfo | undefined;
  private out = '';
  private err = '';

  constructor(
    readonly proc: ChildProcess,
    readonly args: readonly string[],
  ) {
    if (proc.pid === undefined) throw new Error(`could not start node ${MAIN} ${args.join(' ')}`);
    this.pid = proc.pid;
    proc.stdout?.setEncoding('utf8');
    proc.stderr?.setEncoding('utf8');
    proc.stdout?.on('data', (chunk: string) => {
      this.out += chunk;
    });
    proc.stderr?.on('data', (chunk: string) => {
      this.err += chunk;
    });
    this.exited = new Promise((resolveExit) => {
      proc.once('close', (code, signal) => {
        this.exit = { code, signal };
        resolveExit(this.exit);
      });
    });
  }

  get stdout(): string {
    return this.out;
  }

  get stderr(): string {
    return this.err;
  }

  get running(): boolean {
    return this.exit === undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** stdout parsed as pino JSON lines (anything else is skipped). */
  logs(): LogLine[] {
    const lines: LogLine[] = [];
    for (const line of this.out.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        lines.push(JSON.parse(line) as LogLine);
      } catch {
        // a line still being written
      }
    }
    return lines;
  }

  signal(signal: NodeJS.Signals): void {
    if (this.running) this.proc.kill(signal);
  }

  /** Waits (bounded) for the process to exit; throws with its output when it does not. */
  async waitForExit(timeoutMs: number): Promise<ExitInfo> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`timed out after ${timeoutMs} ms waiting for \`${this.describe()}\` to exit`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGKILL and wait for the exit. */
  async kill(): Promise<void> {
    this.signal('SIGKILL');
    await this.waitForExit(10_000);
  }

  describe(): string {
    return `assetpipe ${this.args.join(' ')} (pid ${this.pid})`;
  }

  /** Output for failure messages. */
  dump(): string {
    const tail = (s: string) => (s.length > 4000 ? `...${s.slice(-4000)}` : s);
    return `${this.describe()} exit=${JSON.stringify(this.exit)}\n--- stderr ---\n${tail(this.err)}\n--- stdout ---\n${tail(this.out)}`;
  }
}

const everyChild = new Set<CliProcess>();
process.once('exit', () => {
  for (const child of everyChild) child.signal('SIGKILL');
});

export interface SpawnOptions {
  /** Extra environment; ASSETPIPE_* variables of the test runner are not passed on. */
  env?: Record<string, string>;
  /** Working directory; defaults to the OS temp directory (never the repository). */
  cwd?: string;
}

function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name.startsWith('ASSETPIPE_') || name === 'NODE_OPTIONS') continue;
    env[name] = value;
  }
  return { ...env, ASSETPIPE_ADMIN_KEY: TEST_ADMIN_KEY, ...extra };
}

export interface ServerHandle {
  child: CliProcess;
  port: number;
  baseUrl: string;
}

/**
 * The children of one scope (a test, or a whole file): `killAll()` in `afterEach`/`afterAll`
 * SIGKILLs whatever is still running.
 */
export class ProcessGroup {
  private readonly children = new Set<CliProcess>();

  spawn(args: readonly string[], options: SpawnOptions = {}): CliProcess {
    const proc = spawn(process.execPath, [MAIN, ...args], {
      cwd: options.cwd ?? tmpdir(),
      env: childEnv(options.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const child = new CliProcess(proc, args);
    this.children.add(child);
    everyChild.add(child);
    void child.exited.then(() => everyChild.delete(child));
    return child;
  }

  /** Runs a command to completion (bounded) and returns its exit status and output. */
  async run(
    args: readonly string[],
    options: SpawnOptions & { timeoutMs?: number } = {},
  ): Promise<ExitInfo & { stdout: string; stderr: string; child: CliProcess }> {
    const child = this.spawn(args, options);
    try {
      const exit = await child.waitForExit(options.timeoutMs ?? 60_000);
      return { ...exit, stdout: child.stdout, stderr: child.stderr, child };
    } catch (err) {
      await child.kill().catch(() => undefined);
      throw new Error(`${(err as Error).message}\n${child.dump()}`);
    }
  }

  /** `serve --port P --data D ...` on a free port, once `/healthz` answers. */
  async serve(
    data: string,
    options: SpawnOptions & { args?: string[]; port?: number; timeoutMs?: number } = {},
  ): Promise<ServerHandle> {
    const port = options.port ?? (await freePort());
    const child = this.spawn(
      ['serve', '--port', String(port), '--host', '127.0.0.1', '--data', data, ...(options.args ?? [])],
      options,
    );
    const baseUrl = `http://127.0.0.1:${port}`;
    await waitForHealthy(child, baseUrl, options.timeoutMs ?? 30_000);
    return { child, port, baseUrl };
  }

  /** `worker --data D ...`, once it reports that it runs. */
  async worker(
    data: string,
    options: SpawnOptions & { args?: string[]; timeoutMs?: number } = {},
  ): Promise<CliProcess> {
    const child = this.spawn(['worker', '--data', data, ...(options.args ?? [])], options);
    await waitFor(
      () => {
        if (!child.running) throw new Error(`the worker exited early\n${child.dump()}`);
        return (
          child.stderr.includes('worker running') && child.logs().some((l) => l.msg === 'workers started')
        );
      },
      options.timeoutMs ?? 30_000,
      `${child.describe()} to start`,
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n${child.dump()}`);
    });
    return child;
  }

  async killAll(): Promise<void> {
    const children = [...this.children];
    this.children.clear();
    await Promise.all(children.map((child) => child.kill()));
  }
}

/** Polls `/healthz` until it answers 200; fails at once (with the child's output) if the child exits. */
export async function waitForHealthy(child: CliProcess, baseUrl: string, timeoutMs: number): Promise<void> {
  let exitedEarly = false;
  try {
    await waitFor(
      async () => {
        if (!child.running) {
          exitedEarly = true;
          return true;
        }
        try {
          const res = await fetch(`${baseUrl}/healthz`, { signal: AbortSignal.timeout(2_000) });
          await res.arrayBuffer();
          return res.status === 200;
        } catch {
          return false; // not listening yet
        }
      },
      timeoutMs,
      `${child.describe()} to answer GET /healthz`,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${child.dump()}`);
  }
  if (exitedEarly) throw new Error(`the server exited before it answered /healthz\n${child.dump()}`);
}
