/**
 * The api process: `npm run start -w services/api`, or systemd's wombat-api.
 */
import { resolveServiceDatabase, runService } from '@wombat/core/platform';
import { isEmbeddedDatabaseUrl } from './admin-token.ts';
import { loadConfig } from './config.ts';
import { startApi } from './server.ts';

await runService({
  name: 'api',
  proc: process,
  loadConfig,
  async start(config, { log, lifecycle, fatal, reporter }) {
    const database = await resolveServiceDatabase(config, { log, lifecycle });
    const embedded = database.embedded !== undefined || isEmbeddedDatabaseUrl(database.url, config.embeddedPgPort);
    const api = await startApi({ config, databaseUrl: database.url, embedded, log, fatal, reporter });
    lifecycle.onStop('http', () => api.stop());
  },
});
