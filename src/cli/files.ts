import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';

/** Every regular file under the given files and folders (recursively), sorted, hidden entries skipped in folders. */
export async function expandPaths(paths: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  async function walk(path: string, explicit: boolean): Promise<void> {
    let info: Awaited<ReturnType<typeof stat>>;
    try {
      info = await stat(path);
    } catch {
      throw new Error(`${path}: no such file or folder`);
    }
    if (info.isDirectory()) {
      const entries = await readdir(path);
      for (const entry of entries.sort()) {
        if (entry.startsWith('.')) continue;
        await walk(join(path, entry), false);
      }
    } else if (info.isFile()) {
      out.push(resolve(path));
    } else if (explicit) {
      throw new Error(`${path}: not a regular file or folder`);
    }
  }
  for (const path of paths) await walk(path, true);
  return [...new Set(out)];
}
