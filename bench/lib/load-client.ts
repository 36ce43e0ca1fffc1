/**
 * A small closed-loop HTTP load generator, run as its own process so that it does not share an
 * event loop (or a core's time slice inside one process) with the server it measures:
 *
 *   node --import tsx bench/lib/load-client.ts <url> <concurrency> <seconds> [header: value]...
 *
 * Keeps `concurrency` keep-alive connections busy, each sending the next GET as soon as the last
 * response has been read in full, for `seconds`. Prints one JSON line:
 * `{ "requests": n, "seconds": s, "errors": e, "bytes": b, "statuses": { "200": n } }`.
 */
import { Agent, request } from 'node:http';

const [url, concurrencyArg, secondsArg, ...headerArgs] = process.argv.slice(2);
if (!url || !concurrencyArg || !secondsArg) {
  process.stderr.write('usage: load-client.ts <url> <concurrency> <seconds> [header: value]...\n');
  process.exit(2);
}
const concurrency = Number(concurrencyArg);
const seconds = Number(secondsArg);
const headers: Record<string, string> = {};
for (const arg of headerArgs) {
  const at = arg.indexOf(':');
  if (at > 0) headers[arg.slice(0, at).trim()] = arg.slice(at + 1).trim();
}

const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
const target = new URL(url);
const statuses: Record<string, number> = {};
let requests = 0;
let errors = 0;
let bytes = 0;

function once(): Promise<void> {
  return new Promise((resolve) => {
    const req = request(
      {
        agent,
        host: target.hostname,
        port: target.port,
        path: `${target.pathname}${target.search}`,
        headers,
      },
      (res) => {
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
        });
        res.on('end', () => {
          const code = String(res.statusCode);
          statuses[code] = (statuses[code] ?? 0) + 1;
          if (res.statusCode !== 200) errors++;
          requests++;
          resolve();
        });
      },
    );
    req.on('error', () => {
      errors++;
      resolve();
    });
    req.end();
  });
}

const start = process.hrtime.bigint();
const deadline = start + BigInt(Math.round(seconds * 1e9));
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (process.hrtime.bigint() < deadline) await once();
  }),
);
const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
agent.destroy();
process.stdout.write(`${JSON.stringify({ requests, seconds: elapsed, errors, bytes, statuses })}\n`);
