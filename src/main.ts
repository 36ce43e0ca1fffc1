#!/usr/bin/env node
import { Command, InvalidArgumentError, Option } from 'commander';
import { runIngest } from './cli/ingest.js';
import { type Config, ConfigError, type ConfigFlags, loadConfig } from './config.js';
import { createContainer } from './container.js';
import { createLogger } from './logger.js';
import { VERSION } from './version.js';

function configFrom(flags: ConfigFlags, overrides: Partial<Record<string, string>> = {}): Config {
  return loadConfig({ ...overrides, ...process.env }, flags);
}

function fail(message: string, code = 1): never {
  process.stderr.write(`assetpipe: ${message}\n`);
  process.exit(code);
}

/** Runs `stop` once on SIGTERM/SIGINT; a second signal exits at once. */
function onShutdownSignal(stop: (signal: string) => Promise<void>): void {
  let stopping = false;
  const handler = (signal: string) => {
    if (stopping) {
      process.stderr.write('assetpipe: second signal, exiting now\n');
      process.exit(1);
    }
    stopping = true;
    stop(signal).then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`assetpipe: shutdown failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}

const dataOption = () =>
  new Option('--data <dir>', 'data directory (catalog, queue, blobs) [env: ASSETPIPE_DATA]').default(
    undefined,
    './data',
  );
const workersOption = () =>
  new Option('--workers <n>', 'pipeline jobs run at once in this process [env: ASSETPIPE_WORKERS]').default(
    undefined,
    'cores, max 4',
  );

const program = new Command()
  .name('assetpipe')
  .description('Self-hosted media pipeline: uploads, processing, catalog and delivery.')
  .version(VERSION, '-v, --version')
  .showHelpAfterError('(run with --help for usage)');

program
  .command('serve')
  .description('run the API, the web page and the workers in one process')
  .option('--port <port>', 'port to listen on [env: ASSETPIPE_PORT]', undefined)
  .option('--host <host>', 'address to listen on [env: ASSETPIPE_HOST]', undefined)
  .addOption(dataOption())
  .addOption(workersOption())
  .option('--no-workers', 'serve the API only; `assetpipe worker` processes the jobs')
  .action(async (flags: { port?: string; host?: string; data?: string; workers?: string | boolean }) => {
    const config = configFrom(flags);
    const logger = createLogger(config);
    const container = await createContainer(config, logger);
    const { buildApp } = await import('./app.js');
    const { startWorkers } = await import('./workers.js');
    let shuttingDown = false;
    const app = await buildApp(container, { isShuttingDown: () => shuttingDown });
    const workers = config.workers > 0 ? startWorkers(container) : undefined;
    try {
      await app.listen({ host: config.host, port: config.port });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      await container.close();
      if (code === 'EADDRINUSE')
        fail(`port ${config.port} on ${config.host} is in use; choose another with --port or ASSETPIPE_PORT`);
      throw err;
    }
    process.stderr.write(
      `assetpipe ${VERSION} listening on http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${config.port} (data: ${config.dataDir}, workers: ${config.workers})\n`,
    );
    onShutdownSignal(async (signal) => {
      logger.info({ signal }, 'shutting down');
      shuttingDown = true;
      await app.close();
      await workers?.stop();
      await container.close();
      logger.flush();
    });
  });

program
  .command('worker')
  .description('process pipeline jobs only (run any number next to `serve --no-workers`)')
  .addOption(dataOption())
  .addOption(workersOption())
  .action(async (flags: { data?: string; workers?: string }) => {
    const config = configFrom(flags);
    if (config.workers === 0) fail('--workers must be at least 1 for a worker process', 2);
    const logger = createLogger(config);
    const container = await createContainer(config, logger);
    const { startWorkers } = await import('./workers.js');
    const workers = startWorkers(container);
    process.stderr.write(
      `assetpipe ${VERSION} worker running (data: ${config.dataDir}, workers: ${config.workers})\n`,
    );
    onShutdownSignal(async (signal) => {
      logger.info({ signal }, 'shutting down');
      await workers.stop();
      await container.close();
      logger.flush();
    });
  });

program
  .command('ingest')
  .description('push local files (or whole folders) through the pipeline')
  .argument('<paths...>', 'files or folders (folders are read recursively)')
  .option('--project <id>', 'project the assets belong to', 'default')
  .option('--wait', 'wait until every file is ready or failed (the default)')
  .option('--no-wait', 'return once every file is stored and queued')
  .option('--json', 'print one JSON asset record per line')
  .addOption(dataOption())
  .addOption(workersOption())
  .option('--no-workers', 'do not process here; a running `serve` or `worker` does it')
  .action(
    async (
      paths: string[],
      flags: { project: string; wait?: boolean; json?: boolean; data?: string; workers?: string | boolean },
    ) => {
      // Logs go to stderr at "warn" so stdout stays the result lines.
      const config = configFrom(flags, { ASSETPIPE_LOG_LEVEL: 'warn' });
      const logger = createLogger(config, { stream: 'stderr' });
      const container = await createContainer(config, logger);
      let code: number;
      try {
        code = await runIngest(container, {
          paths,
          project: flags.project,
          wait: flags.wait !== false,
          json: flags.json === true,
          runWorkers: flags.workers !== false,
        });
      } finally {
        await container.close();
        logger.flush();
      }
      process.exit(code);
    },
  );

program
  .command('migrate')
  .description('apply catalog migrations (also done automatically at start)')
  .addOption(dataOption())
  .action(async (flags: { data?: string }) => {
    const config = configFrom(flags);
    const container = await createContainer(config, createLogger(config, { stream: 'stderr' }));
    await container.close();
    process.stdout.write(`catalog is up to date (${config.databaseUrl})\n`);
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof ConfigError) fail(err.message, 2);
  if (err instanceof InvalidArgumentError) fail(err.message, 2);
  if (err instanceof Error && /^(.*): no such file or folder$|not a regular file/.test(err.message))
    fail(err.message, 2);
  process.stderr.write(`assetpipe: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
