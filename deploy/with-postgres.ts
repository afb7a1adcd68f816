/**
 * Runs a command (the test suite) against a PostgreSQL: the server in
 * DATABASE_URL when set, otherwise an embedded one kept under .wombat/pg-test and
 * stopped afterwards. The command sees the server as WOMBAT_TEST_ADMIN_URL and
 * creates a database of its own per test file there.
 *
 *   node deploy/with-postgres.ts tap [files...]
 */
import { spawn } from 'node:child_process';
import { createLogger, parsePostgresUrl, resolveDatabase, resolveFromRoot } from '@wombat/core';

const log = createLogger({ name: 'test-postgres', level: process.env.LOG_LEVEL ?? 'info', format: 'auto', isTty: process.stderr.isTTY, destination: process.stderr });
const [cmd, ...args] = process.argv.slice(2);
if (!cmd) {
  console.error('usage: node deploy/with-postgres.ts <command> [args...]');
  process.exit(2);
}

let databaseUrl = process.env.DATABASE_URL || undefined;
if (databaseUrl) {
  try {
    parsePostgresUrl(databaseUrl);
  } catch (err) {
    console.error(`DATABASE_URL: ${(err as Error).message}`);
    process.exit(1);
  }
}

const resolved = await resolveDatabase({
  databaseUrl,
  embeddedDir: resolveFromRoot(process.env.EMBEDDED_PG_TEST_DIR ?? '.wombat/pg-test'),
  embeddedPort: Number(process.env.EMBEDDED_PG_TEST_PORT ?? 54330),
  log,
  adopt: true,
});
const adminUrl = resolved.embedded?.adminUrl ?? resolved.url;
log.info({ embedded: resolved.embedded !== undefined }, 'tests use PostgreSQL');

const child = spawn(cmd, args, { stdio: 'inherit', env: { ...process.env, WOMBAT_TEST_ADMIN_URL: adminUrl } });
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
const code = await new Promise<number>((resolve) => child.on('close', (c, s) => resolve(c ?? (s ? 1 : 0))));
await resolved.stop();
process.exit(code);
