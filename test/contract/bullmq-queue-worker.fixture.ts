/**
 * A separate OS process for the BullMQ queue tests, run with `node --import tsx`:
 *
 *   hang <backend-json> <kind> <leaseMs>  works <kind> with a handler that never settles (and
 *                                         ignores its signal), prints `ready` once its worker is
 *                                         connected, prints `claimed <id> <attempt>` per job, then
 *                                         runs until killed.
 *
 * <backend-json> is a `BullmqBackend`, e.g. {"kind":"redis","url":"redis://127.0.0.1:6379","prefix":"p"}.
 */
import { type BullmqBackend, BullmqJobQueue } from '../../src/queue/bullmq-queue.js';

const [mode, backendJson, kind, leaseMs] = process.argv.slice(2);
if (mode !== 'hang' || !backendJson || !kind) {
  process.stderr.write('usage: bullmq-queue-worker.fixture.ts hang <backend-json> <kind> [leaseMs]\n');
  process.exit(2);
}

const backend = JSON.parse(backendJson) as BullmqBackend;
const silent = { warn: () => {}, error: () => {} };
const queue = new BullmqJobQueue({ backend, leaseMs: Number(leaseMs ?? 1500), logger: silent });
queue.work(kind, (job) => {
  process.stdout.write(`claimed ${job.id} ${job.attempt}\n`);
  return new Promise<void>(() => {});
});
await queue.waitUntilReady();
process.stdout.write('ready\n');
