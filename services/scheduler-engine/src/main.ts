/**
 * The scheduler-engine process: `npm run start -w services/scheduler-engine`, or
 * systemd's wombat-scheduler-engine. Several may run at once; each occurrence is
 * still published once.
 */
import { hostname } from 'node:os';
import { runService } from '@wombat/core/platform';
import { loadConfig } from './config.ts';
import { startService } from './service.ts';

await runService({
  name: 'scheduler-engine',
  proc: process,
  loadConfig,
  start: (config, deps) => startService(config, { ...deps, host: hostname(), pid: process.pid }),
});
