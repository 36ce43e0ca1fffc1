/**
 * tus upload throughput against a plain file copy of the same bytes, in one run on one machine.
 *
 *   npm run bench:upload      (sh scripts/setup.sh && tsx bench/upload.ts)
 *
 * Starts assetpipe in process (real container on a temp data dir, Fastify on 127.0.0.1:0, the tus
 * route with simple hooks), generates one 256 MiB file, then measures, ROUNDS times each:
 *   - fs.copyFile (the kernel's copy_file_range where available),
 *   - a streamed read -> write copy (what a Node.js process moving bytes can do at best), and the
 *     same with an fsync at the end (for reference: the blob store fsyncs what it stores),
 *   - a bare Node.js HTTP PUT over loopback into a file (for reference: the ceiling of any HTTP
 *     upload on this machine, without tus),
 *   - a tus-js-client upload over loopback with 32 MiB chunks through the production route and
 *     hooks: "transfer" until the last byte is in the tus store, and "end to end" until the client
 *     has its asset (includes the finish hook: reading the tus file again, sha256, blob store write
 *     with fsync, catalog records).
 * Dirty pages are written out (sync) before each measurement. Prints the medians and ratios, and
 * replaces the upload section of bench/RESULTS.md.
 */

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { Upload } from 'tus-js-client';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { createContainer } from '../src/container.js';
import { principalOf } from '../src/http/auth.js';
import { TUS_PATH } from '../src/http/routes/tus.js';
import { writeWavFile } from '../test/helpers/wav.js';

const MiB = 1024 * 1024;
const SIZE = 256 * MiB;
const CHUNK_SIZE = 32 * MiB;
const ROUNDS = 5;
const ADMIN_KEY = randomBytes(24).toString('hex');
const RESULTS = join(dirname(fileURLToPath(import.meta.url)), 'RESULTS.md');
const START = '<!-- bench:upload:start -->';
const END = '<!-- bench:upload:end -->';

/** Writes dirty pages out, so that one measurement does not pay for the previous one's writeback. */
function settle(): void {
  try {
    execFileSync('sync');
  } catch {
    // no sync(1): measurements are noisier, nothing else changes
  }
}

async function timed(run: () => Promise<void>): Promise<number> {
  settle();
  const start = process.hrtime.bigint();
  await run();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/** The ceiling for any HTTP upload here: a bare Node.js server piping one PUT body into a file. */
async function rawHttpPut(source: string, target: string): Promise<void> {
  const server = createServer((req, res) => {
    pipeline(req, createWriteStream(target)).then(
      () => res.writeHead(204).end(),
      () => res.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method: 'PUT', headers: { 'Content-Length': SIZE } });
      req.once('response', (res) => {
        res.resume();
        if (res.statusCode === 204) resolve();
        else reject(new Error(`raw PUT answered ${res.statusCode}`));
      });
      req.once('error', reject);
      createReadStream(source).pipe(req);
    });
  } finally {
    server.close();
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const mbps = (seconds: number) => SIZE / 1e6 / seconds;

function cpuModel(cpuinfo: string): string {
  return /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown';
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'assetpipe-bench-upload-'));
  const config = loadConfig(
    {
      ASSETPIPE_LOG_LEVEL: 'silent',
      ASSETPIPE_ADMIN_KEY: ADMIN_KEY,
      ASSETPIPE_MAX_UPLOAD_BYTES: '1GiB',
      ASSETPIPE_RATE_LIMIT: '0',
    },
    { data: join(work, 'data') },
  );
  const container = await createContainer(config, pino({ level: 'silent' }));
  const finishStarted = new Map<string, bigint>();
  // The production hooks (catalog-backed upload sessions), with the moment the last byte landed noted.
  const { uploads } = container;
  const app = await buildApp(container, {
    tus: {
      hooks: {
        start: (upload) => uploads.startTus(upload),
        finish: (upload) => {
          if (!finishStarted.has(upload.uploadId))
            finishStarted.set(upload.uploadId, process.hrtime.bigint());
          return uploads.finishTus(upload);
        },
        terminate: (uploadId) => uploads.terminateTus(uploadId),
        authorize: (uploadId, principal) => uploads.authorizeTus(uploadId, principal),
        principalOf,
      },
    },
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('no TCP address');
  const endpoint = `http://127.0.0.1:${address.port}${TUS_PATH}`;

  try {
    const source = join(work, 'source.wav');
    process.stdout.write(`generating ${SIZE / MiB} MiB... `);
    const sha256 = await writeWavFile(source, SIZE);
    console.log('done');

    const copyFileRuns: number[] = [];
    const streamRuns: number[] = [];
    const fsyncRuns: number[] = [];
    const rawHttpRuns: number[] = [];
    const tusRuns: number[] = [];
    const transferRuns: number[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const a = join(work, `copy-${round}.bin`);
      copyFileRuns.push(await timed(() => copyFile(source, a)));
      await rm(a);

      const b = join(work, `stream-${round}.bin`);
      streamRuns.push(await timed(() => pipeline(createReadStream(source), createWriteStream(b))));
      await rm(b);

      const c = join(work, `fsync-${round}.bin`);
      fsyncRuns.push(
        await timed(async () => {
          await pipeline(createReadStream(source), createWriteStream(c));
          const handle = await open(c, 'r+');
          await handle.sync();
          await handle.close();
        }),
      );
      await rm(c);

      const d = join(work, `http-${round}.bin`);
      rawHttpRuns.push(await timed(() => rawHttpPut(source, d)));
      await rm(d);

      const started = process.hrtime.bigint();
      let uploadId = '';
      let assetId = '';
      const seconds = await timed(
        () =>
          new Promise<void>((resolve, reject) => {
            const upload = new Upload(createReadStream(source) as unknown as Upload['file'], {
              endpoint,
              chunkSize: CHUNK_SIZE,
              retryDelays: null,
              headers: { Authorization: `Bearer ${ADMIN_KEY}` },
              metadata: { filename: `bench-${round}.wav`, projectId: 'default', contentType: 'audio/wav' },
              onSuccess: ({ lastResponse }) => {
                uploadId = upload.url?.split('/').pop() ?? '';
                assetId = (JSON.parse(lastResponse.getBody()) as { assetId: string }).assetId;
                resolve();
              },
              onError: reject,
            });
            upload.start();
          }),
      );
      tusRuns.push(seconds);
      const finishAt = finishStarted.get(uploadId);
      if (finishAt === undefined) throw new Error('the finish hook never ran');
      transferRuns.push(Number(finishAt - started) / 1e9);
      const res = await fetch(`http://127.0.0.1:${address.port}/v1/assets/${assetId}`, {
        headers: { Authorization: `Bearer ${ADMIN_KEY}` },
      });
      const stored = (await res.json()) as { sha256?: string; size?: number };
      if (stored.sha256 !== sha256 || stored.size !== SIZE) {
        throw new Error(`round ${round}: the stored asset differs from the source`);
      }
      console.log(
        `round ${round}: copyFile ${mbps(copyFileRuns.at(-1)!).toFixed(0)} MB/s, stream copy ${mbps(streamRuns.at(-1)!).toFixed(0)} MB/s, + fsync ${mbps(fsyncRuns.at(-1)!).toFixed(0)} MB/s, bare HTTP PUT ${mbps(rawHttpRuns.at(-1)!).toFixed(0)} MB/s, tus transfer ${mbps(transferRuns.at(-1)!).toFixed(0)} MB/s, tus end to end ${mbps(seconds).toFixed(0)} MB/s`,
      );
    }

    const copyFileMbps = mbps(median(copyFileRuns));
    const streamMbps = mbps(median(streamRuns));
    const fsyncMbps = mbps(median(fsyncRuns));
    const rawHttpMbps = mbps(median(rawHttpRuns));
    const transferMbps = mbps(median(transferRuns));
    const tusMbps = mbps(median(tusRuns));
    const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
    const cores = availableParallelism();
    const rows: [string, number][] = [
      ['fs.copyFile', copyFileMbps],
      ['streamed read -> write copy', streamMbps],
      ['streamed copy + fsync (for reference)', fsyncMbps],
      ['bare Node.js HTTP PUT over loopback into a file (for reference)', rawHttpMbps],
      ['tus transfer (until the last byte is stored)', transferMbps],
      ['tus end to end (until the client has its asset)', tusMbps],
    ];
    const ratio = (a: number, b: number) => (a / b).toFixed(2);
    const ratios = [
      `tus end to end / streamed copy: **${ratio(tusMbps, streamMbps)}**`,
      `tus end to end / copyFile: **${ratio(tusMbps, copyFileMbps)}**`,
      `tus transfer / streamed copy: **${ratio(transferMbps, streamMbps)}**`,
      `tus transfer / copyFile: **${ratio(transferMbps, copyFileMbps)}**`,
      `tus transfer / bare HTTP PUT: **${ratio(transferMbps, rawHttpMbps)}**`,
    ];

    console.log('');
    for (const [name, value] of rows) console.log(`${name.padEnd(66)} ${value.toFixed(0).padStart(6)} MB/s`);
    for (const line of ratios) console.log(line.replaceAll('**', ''));

    const section = [
      START,
      '## Upload throughput: tus vs. a plain file copy (`npm run bench:upload`)',
      '',
      `${new Date().toISOString()} · Node.js ${process.version} · ${cpuModel(cpuinfo)} · ${cores} cores`,
      '',
      `One ${SIZE / MiB} MiB file (WAV header + random bytes), median of ${ROUNDS} rounds; MB = 10^6 bytes.`,
      `tus: tus-js-client over loopback to the in-process server, ${CHUNK_SIZE / MiB} MiB chunks.`,
      '"End to end" includes the finish hook (the tus file is read again, hashed and written to the blob store with fsync, then recorded).',
      '',
      '| measurement | MB/s |',
      '|---|---:|',
      ...rows.map(([name, value]) => `| ${name} | ${value.toFixed(0)} |`),
      '',
      ...ratios.map((line) => `- ${line}`),
      END,
    ].join('\n');
    const previous = await readFile(RESULTS, 'utf8').catch(() => '# Benchmark results\n');
    const begin = previous.indexOf(START);
    const end = previous.indexOf(END);
    const next =
      begin >= 0 && end > begin
        ? previous.slice(0, begin) + section + previous.slice(end + END.length)
        : `${previous.trimEnd()}\n\n${section}\n`;
    await writeFile(RESULTS, next);
    console.log(`\nwritten to ${RESULTS}`);
  } finally {
    await app.close();
    await container.close();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
