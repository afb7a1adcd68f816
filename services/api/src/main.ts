import { createLifecycle, createLogger, handleSignals, resolveDatabase, resolveFromRoot } from '@wombat/core';
import { isEmbeddedDatabaseUrl } from './admin-token.ts';
import { loadConfig } from './config.ts';
import { startApi } from './server.ts';

let config;
try {
  config = loadConfig(process.env);
} catch (err) {
  console.error((err as Error).message);
  process.exit(1);
}

const log = createLogger({ name: 'api', level: config.logLevel, format: config.logFormat, isTty: process.stdout.isTTY });
const lifecycle = createLifecycle({ log, shutdownTimeoutMs: config.shutdownTimeoutMs });
handleSignals(lifecycle, process, log);

try {
  const database = await resolveDatabase({
    databaseUrl: config.databaseUrl,
    embeddedDir: resolveFromRoot(config.embeddedPgDir),
    embeddedPort: config.embeddedPgPort,
    log,
  });
  lifecycle.onStop('database', () => database.stop());
  const embedded = database.embedded !== undefined || isEmbeddedDatabaseUrl(database.url, config.embeddedPgPort);
  const api = await startApi({ config, databaseUrl: database.url, embedded, log });
  lifecycle.onStop('http', () => api.stop());
} catch (err) {
  log.fatal({ err }, 'api failed to start');
  await lifecycle.stop('start failed');
  log.flush?.();
  process.exit(1);
}
