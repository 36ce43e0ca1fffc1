/**
 * `npm run bench`: every benchmark, one after another, each printing its baseline, assetpipe's
 * figure and their ratio, and updating its section of bench/RESULTS.md.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const BENCHES = ['upload.ts', 'images.ts', 'video.ts', 'scale.ts'];

let failed = 0;
for (const bench of BENCHES) {
  process.stdout.write(`\n== bench/${bench}\n`);
  const result = spawnSync(process.execPath, ['--import', 'tsx', join(here, bench)], { stdio: 'inherit' });
  if (result.status !== 0) failed++;
}
process.exit(failed === 0 ? 0 : 1);
