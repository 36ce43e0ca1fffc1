import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

// Worker fixtures in another OS process, for the queue contract's "a worker died" cases.

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Runs a fixture script (TypeScript, through tsx) from the repository root. */
export function runFixture(fixture: string, args: string[]): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', fixture, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return once(child, 'exit').then(() => undefined);
}

/** Resolves once the child printed `line`; rejects if it exits first or stalls. */
export function waitForLine(child: ChildProcess, line: string, timeoutMs = 20_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(
      () => fail(new Error(`fixture did not print "${line}" in ${timeoutMs} ms: ${err}`)),
      timeoutMs,
    );
    const onOut = (chunk: Buffer) => {
      out += chunk.toString();
      if (out.split('\n').some((l) => l === line || l.startsWith(`${line} `))) {
        done();
        resolve();
      }
    };
    const onErr = (chunk: Buffer) => {
      err += chunk.toString();
    };
    const onExit = (code: number | null) =>
      fail(new Error(`fixture exited (${code}) before "${line}": ${err}`));
    function done() {
      clearTimeout(timer);
      child.stdout?.off('data', onOut);
      child.stderr?.off('data', onErr);
      child.off('exit', onExit);
    }
    function fail(error: Error) {
      done();
      reject(error);
    }
    child.stdout?.on('data', onOut);
    child.stderr?.on('data', onErr);
    child.once('exit', onExit);
  });
}

/**
 * Starts a fixture worker that never finishes its job and resolves once it polls: the contract's
 * `startDoomedWorker`. `kill` ends it with SIGKILL (no shutdown, no more heartbeats).
 */
export async function startDoomedFixture(
  fixture: string,
  args: string[],
  children: ChildProcess[],
): Promise<{ kill: () => Promise<void> }> {
  const child = runFixture(fixture, args);
  children.push(child);
  await waitForLine(child, 'ready');
  return {
    kill: async () => {
      child.kill('SIGKILL');
      await exited(child);
    },
  };
}

/** SIGKILLs every fixture process started for a harness and waits for their exits. */
export async function killFixtures(children: readonly ChildProcess[]): Promise<void> {
  for (const child of children) {
    child.kill('SIGKILL');
    await exited(child);
  }
}
