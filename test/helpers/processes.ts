import { readdir, readFile } from 'node:fs/promises';

export interface ChildInfo {
  pid: number;
  /** argv, as /proc/<pid>/cmdline has it. */
  argv: string[];
}

/** The live children of `parentPid` (Linux /proc), with their command lines. */
export async function childrenOf(parentPid: number): Promise<ChildInfo[]> {
  const out: ChildInfo[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== parentPid) continue;
      const argv = (await readFile(`/proc/${name}/cmdline`, 'utf8')).split('\0').filter(Boolean);
      out.push({ pid: Number(name), argv });
    } catch {
      // the process ended while we looked
    }
  }
  return out;
}
