/**
 * The worker process: `npm run start -w services/worker`, or systemd's wombat-worker@N. Several run
 * side by side; pg-boss hands each job to one of them.
 */
import { ConfigError, createLifecycle, createLogger, handleSignals } from '@wombat/core';
import { loadConfig } from './config.ts';
import { startService } from './service.ts';

let config;
try {
  config = loadConfig(process.env);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(err.message);
  process.exit(1);
}

const log = createLogger({ name: 'worker', level: config.logLevel, format: config.logFormat, isTty: process.stdout.isTTY });
const lifecycle = createLifecycle({ log, shutdownTimeoutMs: config.shutdownTimeoutMs });
handleSignals(lifecycle, process, log);

try {
  await startService(config, { log, lifecycle });
} catch (err) {
  log.fatal({ err }, 'worker failed to start');
  await lifecycle.stop('start failed');
  log.flush();
  process.exit(1);
}
