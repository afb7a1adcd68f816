/**
 * The scheduler-engine process: `npm run start -w services/scheduler-engine`, or
 * systemd's wombat-scheduler-engine. Several may run at once; each occurrence is
 * still published once.
 */
import { hostname } from 'node:os';
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

const log = createLogger({ name: 'scheduler-engine', level: config.logLevel, format: config.logFormat, isTty: process.stdout.isTTY });
const lifecycle = createLifecycle({ log, shutdownTimeoutMs: config.shutdownTimeoutMs });
handleSignals(lifecycle, process, log);

try {
  await startService(config, { log, lifecycle, host: hostname(), pid: process.pid });
} catch (err) {
  log.fatal({ err }, 'scheduler-engine failed to start');
  await lifecycle.stop('start failed');
  log.flush();
  process.exit(1);
}
