#!/usr/bin/env node
import { Command, InvalidArgumentError, Option } from 'commander';
import { runCheck } from './cli/check.js';
import { runIngest } from './cli/ingest.js';
import { type Config, ConfigError, type ConfigFlags, loadConfig, processEnv, redactUrl } from './config.js';
import { createContainer } from './container.js';
import type { Scope } from './domain/api-key.js';
import { isAppError } from './errors.js';
import { keyResource } from './http/routes/keys.js';
import { createLogger } from './logger.js';
import { VERSION } from './version.js';

function configFrom(flags: ConfigFlags, overrides: Partial<Record<string, string>> = {}): Config {
  return loadConfig({ ...overrides, ...processEnv() }, flags);
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
    const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${config.port}`;
    process.stderr.write(
      `assetpipe ${VERSION} listening on ${url} (data: ${config.dataDir}, workers: ${config.workers})\n`,
    );
    const admin = await container.auth.ensureAdminKey(config.dataDir);
    if (admin?.created) {
      // Printed once: the key is also in <data>/admin.key (mode 0600).
      process.stderr.write(
        `\nAn admin API key was created (kept in ${config.dataDir}/admin.key):\n  ${admin.key}\nOpen the web UI logged in: ${url}/#key=${admin.key}\n\n`,
      );
    } else if (admin) {
      process.stderr.write(`admin API key: ${config.dataDir}/admin.key\n`);
    }
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

const keys = program.command('keys').description('manage API keys (stored hashed; a key is shown once)');
keys
  .command('create')
  .description('create an API key and print it')
  .requiredOption('--name <name>', 'what the key is for')
  .option('--scope <scopes>', 'comma-separated: read, write, admin', 'read,write')
  .option('--project <id>', 'bind the key to one project')
  .option('--json', 'print the key record as JSON')
  .addOption(dataOption())
  .action(async (flags: { name: string; scope: string; project?: string; json?: boolean; data?: string }) => {
    const config = configFrom(flags);
    const container = await createContainer(config, createLogger({ logLevel: 'warn' }, { stream: 'stderr' }));
    try {
      const scopes = flags.scope.split(',').map((s) => s.trim()) as Scope[];
      const created = await container.auth.createKey({ name: flags.name, scopes, projectId: flags.project });
      if (flags.json)
        process.stdout.write(`${JSON.stringify({ ...keyResource(created.record), key: created.key })}\n`);
      else {
        process.stdout.write(`${created.key}\n`);
        process.stderr.write(
          `key ${created.record.id} (${scopes.join(', ')}${flags.project ? `, project ${flags.project}` : ''}): store it now, it is not shown again\n`,
        );
      }
    } finally {
      await container.close();
    }
  });
keys
  .command('list')
  .description('list API keys (never their secrets)')
  .option('--json', 'one JSON record per line')
  .addOption(dataOption())
  .action(async (flags: { json?: boolean; data?: string }) => {
    const config = configFrom(flags);
    const container = await createContainer(config, createLogger({ logLevel: 'warn' }, { stream: 'stderr' }));
    try {
      for (const key of await container.auth.listKeys()) {
        const r = keyResource(key);
        process.stdout.write(
          flags.json
            ? `${JSON.stringify(r)}\n`
            : `${r.id}  ${r.prefix}  ${r.scopes.join(',').padEnd(16)} ${(r.projectId ?? '*').padEnd(12)} ${r.revokedAt ? 'revoked' : 'active '}  ${r.name}\n`,
        );
      }
    } finally {
      await container.close();
    }
  });
keys
  .command('revoke')
  .description('revoke an API key by id')
  .argument('<id>', 'the key id (key_...)')
  .addOption(dataOption())
  .action(async (id: string, flags: { data?: string }) => {
    const config = configFrom(flags);
    const container = await createContainer(config, createLogger({ logLevel: 'warn' }, { stream: 'stderr' }));
    try {
      await container.auth.revokeKey(id);
      process.stderr.write(`revoked ${id}\n`);
    } finally {
      await container.close();
    }
  });

program
  .command('sign-url')
  .description('print a signed /img URL (absolute when ASSETPIPE_PUBLIC_URL is set)')
  .argument(
    '<path-and-query>',
    'e.g. "/img/ast_...?w=400&f=webp" (v, the current version, is added when missing)',
  )
  .option('--expires-in <sec>', 'valid for this many seconds (adds exp); default: no expiry')
  .addOption(dataOption())
  .action(async (pathAndQuery: string, flags: { expiresIn?: string; data?: string }) => {
    let expiresInSec: number | undefined;
    if (flags.expiresIn !== undefined) {
      expiresInSec = Number(flags.expiresIn);
      if (!/^[1-9][0-9]*$/.test(flags.expiresIn)) {
        throw new InvalidArgumentError(
          `--expires-in must be whole seconds (e.g. 3600); got ${flags.expiresIn}`,
        );
      }
    }
    const config = configFrom(flags);
    const container = await createContainer(config, createLogger({ logLevel: 'warn' }, { stream: 'stderr' }));
    try {
      // No API key here: whoever can read the data directory (and its signing key) has every right.
      const signed = await container.imageUrls.sign(null, pathAndQuery, { expiresInSec });
      process.stdout.write(`${signed.url}\n`);
    } finally {
      await container.close();
    }
  });

program
  .command('check')
  .description("re-validate a ready video's or audio's stored stream package (exit 1 on any finding)")
  .argument('<assetId>', 'the asset id (ast_...)')
  .option('--json', 'print the report as one JSON object')
  .addOption(dataOption())
  .action(async (assetId: string, flags: { json?: boolean; data?: string }) => {
    const config = configFrom(flags);
    const container = await createContainer(config, createLogger({ logLevel: 'warn' }, { stream: 'stderr' }));
    let code: number;
    try {
      code = await runCheck(container, assetId, { json: flags.json === true });
    } finally {
      await container.close();
    }
    process.exit(code);
  });

program
  .command('migrate')
  .description('apply catalog migrations (also done automatically at start)')
  .addOption(dataOption())
  .action(async (flags: { data?: string }) => {
    const config = configFrom(flags);
    const container = await createContainer(config, createLogger(config, { stream: 'stderr' }));
    await container.close();
    process.stdout.write(`catalog is up to date (${redactUrl(config.databaseUrl)})\n`);
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof ConfigError) fail(err.message, 2);
  if (isAppError(err) && err.status < 500) fail(err.message, 2);
  if (err instanceof InvalidArgumentError) fail(err.message, 2);
  if (err instanceof Error && /^(.*): no such file or folder$|not a regular file/.test(err.message))
    fail(err.message, 2);
  process.stderr.write(`assetpipe: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
