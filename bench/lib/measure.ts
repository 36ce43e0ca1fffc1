/**
 * Wall and CPU time of work that runs in child processes (ffmpeg), for the benches.
 *
 * CPU seconds: the `cutime` + `cstime` fields of /proc/self/stat (user and system time of every
 * child process this process has waited for, all of ffmpeg's threads included), read before and
 * after; Linux only. `process.cpuUsage()`/`process.resourceUsage()` count only this process, and
 * ffmpeg is spawned inside the code under test, so a `/usr/bin/time` wrapper cannot be put around
 * it without changing that code.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** Exits with a message on anything but Linux (the CPU figures need /proc/self/stat). */
export function requireLinux(bench: string): void {
  if (process.platform !== 'linux') {
    process.stderr.write(`${bench} reads children CPU time from /proc/self/stat: Linux only\n`);
    process.exit(1);
  }
}

/** CPU seconds (user + system) of all waited-for children of this process so far. */
export function childrenCpuSec(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  // Fields after the command name (which is in parentheses and may hold spaces) start at field 3.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cutime = Number(fields[16 - 3]);
  const cstime = Number(fields[17 - 3]);
  return (cutime + cstime) / CLK_TCK;
}

export interface Measured {
  wallSec: number;
  cpuSec: number;
}

export async function measured(work: () => Promise<void>): Promise<Measured> {
  const cpu0 = childrenCpuSec();
  const t0 = process.hrtime.bigint();
  await work();
  const wallSec = Number(process.hrtime.bigint() - t0) / 1e9;
  return { wallSec, cpuSec: childrenCpuSec() - cpu0 };
}

export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
