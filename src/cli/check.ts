import type { Container } from '../container.js';
import { isAppError } from '../errors.js';
import { checkStreamPackage } from '../services/stream-check.js';

/**
 * `assetpipe check <assetId>`: the findings one per line on stdout and exit code 1 when there are
 * any, else a one-line summary and 0. An asset that cannot be checked (unknown, not a ready video
 * or audio) is a one-line message on stderr and exit code 1.
 */
export async function runCheck(
  container: Container,
  assetId: string,
  options: { json?: boolean } = {},
): Promise<number> {
  let report: Awaited<ReturnType<typeof checkStreamPackage>>;
  try {
    // No API key here: whoever can read the data directory may see every asset.
    const asset = await container.assets.visible(null, assetId);
    report = await checkStreamPackage(
      { catalog: container.catalog, blobs: container.blobs, scratchDir: container.runner.scratchRoot },
      asset,
    );
  } catch (err) {
    if (!isAppError(err) || err.status >= 500) throw err;
    process.stderr.write(`assetpipe check: ${err.message}\n`);
    return 1;
  }
  if (options.json) {
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } else if (report.ok) {
    process.stdout.write(
      `ok: ${assetId}: ${report.playlists} playlists, ${report.segments} segments, no findings\n`,
    );
  } else {
    for (const finding of report.findings) process.stdout.write(`${finding.code}  ${finding.message}\n`);
  }
  return report.ok ? 0 : 1;
}
