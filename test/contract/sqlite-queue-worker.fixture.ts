/**
 * A separate OS process for the SQLite queue tests, run with `node --import tsx`:
 *
 *   hang <file> <kind> <leaseMs>  works <kind> with a handler that never settles (and ignores its
 *                                 signal), prints `ready` once polling, then runs until killed;
 *   enqueue <file> <kind>         opens the queue (running its migrations), enqueues one job of
 *                                 <kind>, prints its id and exits.
 */
import { SqliteJobQueue } from '../../src/queue/sqlite-queue.js';

const [mode, file, kind, leaseMs] = process.argv.slice(2);
if (!mode || !file || !kind) {
  process.stderr.write('usage: sqlite-queue-worker.fixture.ts hang|enqueue <file> <kind> [leaseMs]\n');
  process.exit(2);
}

const silent = { warn: () => {}, error: () => {} };

if (mode === 'hang') {
  const queue = new SqliteJobQueue({ file, leaseMs: Number(leaseMs ?? 1500), pollMs: 50, logger: silent });
  queue.work(kind, (job) => {
    process.stdout.write(`claimed ${job.id} ${job.attempt}\n`);
    return new Promise<void>(() => {});
  });
  process.stdout.write('ready\n');
} else if (mode === 'enqueue') {
  const queue = new SqliteJobQueue({ file, logger: silent });
  const { id } = await queue.enqueue(kind, { pid: process.pid });
  await queue.close();
  process.stdout.write(`${id}\n`);
} else {
  process.stderr.write(`unknown mode ${mode}\n`);
  process.exit(2);
}
