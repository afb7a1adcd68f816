/**
 * The worker process: `npm run start -w services/worker`, or systemd's wombat-worker@N. Several run
 * side by side; pg-boss hands each job to one of them.
 */
import { runService } from '@wombat/core/platform';
import { loadConfig } from './config.ts';
import { startService } from './service.ts';

await runService({ name: 'worker', proc: process, loadConfig, start: (config, deps) => startService(config, deps) });
