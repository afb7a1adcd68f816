/**
 * Runs a command (the test suite, a benchmark) against a PostgreSQL: the server in
 * DATABASE_URL when set, otherwise (or `embedded`) an embedded one kept under .wombat/pg-test. The
 * command sees the server as WOMBAT_TEST_ADMIN_URL and creates databases of its
 * own there.
 *
 * Several runs may share the embedded server (two terminals in one checkout): each
 * registers itself, and the last one to finish stops the server.
 *
 * Work a run would otherwise repeat or wait for: the embedded server runs without fsync
 * (skipDiskFlushes); WOMBAT_TEST_TEMPLATE names this run's template database, migrated by
 * the first test database and copied by the others, dropped at the end (see
 * @wombat/core/testing); NODE_COMPILE_CACHE (default .wombat/compile-cache) keeps Node's
 * compiled TypeScript for the hundreds of processes that load the same sources.
 *
 *   node deploy/with-postgres.ts tap [files...]
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createLogger, EMBEDDED_DATABASE, freePort, isProcessAlive, parsePostgresUrl, resolveDatabase, type ResolvedDatabase, resolveFromRoot, withDirLock } from '@wombat/core/platform';
import { dropTestTemplate, skipDiskFlushes } from '@wombat/core/testing';

const log = createLogger({ name: 'test-postgres', level: process.env.LOG_LEVEL ?? 'info', format: 'auto', isTty: process.stderr.isTTY, destination: process.stderr });
const [cmd, ...args] = process.argv.slice(2);
if (!cmd) {
  console.error('usage: node deploy/with-postgres.ts <command> [args...]');
  process.exit(2);
}

// The test runner is local tooling: unset or `embedded` means the embedded test server.
const databaseUrl = process.env.DATABASE_URL?.trim() && process.env.DATABASE_URL.trim() !== EMBEDDED_DATABASE ? process.env.DATABASE_URL.trim() : undefined;
if (databaseUrl) {
  try {
    parsePostgresUrl(databaseUrl);
  } catch (err) {
    console.error(`DATABASE_URL: ${(err as Error).message}`);
    process.exit(1);
  }
}

const embeddedDir = resolveFromRoot(process.env.EMBEDDED_PG_TEST_DIR ?? '.wombat/pg-test');
const usersDir = `${embeddedDir}.users`;
const lockDir = `${embeddedDir}.lock`;

/** A short critical section across the runs sharing the embedded server. */
const withLock = <T>(fn: () => Promise<T>): Promise<T> => withDirLock(lockDir, fn);

function liveUsers(): number[] {
  mkdirSync(usersDir, { recursive: true });
  const pids = readdirSync(usersDir).map(Number).filter(Number.isInteger);
  for (const pid of pids.filter((p) => !isProcessAlive(p))) rmSync(path.join(usersDir, String(pid)), { force: true });
  return pids.filter(isProcessAlive);
}

const resolved: ResolvedDatabase = databaseUrl
  ? await resolveDatabase({ databaseUrl, embeddedDir, embeddedPort: 0, log })
  : await withLock(async () => {
      liveUsers();
      writeFileSync(path.join(usersDir, String(process.pid)), '');
      return resolveDatabase({
        databaseUrl: EMBEDDED_DATABASE,
        embeddedDir,
        // Any free port: a running server is found through its data directory, not its port.
        embeddedPort: process.env.EMBEDDED_PG_TEST_PORT ? Number(process.env.EMBEDDED_PG_TEST_PORT) : await freePort(),
        log,
      });
    });
const adminUrl = resolved.embedded?.adminUrl ?? resolved.url;
// The embedded test server is ours to tune; a server in DATABASE_URL is left as it is.
if (resolved.embedded) await skipDiskFlushes(adminUrl);
log.info({ embedded: resolved.embedded !== undefined }, 'tests use PostgreSQL');

const template = `wombat_tpl_${process.pid}`;
const env = {
  ...process.env,
  WOMBAT_TEST_ADMIN_URL: adminUrl,
  WOMBAT_TEST_TEMPLATE: template,
  NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE ?? resolveFromRoot('.wombat/compile-cache'),
};
const child = spawn(cmd, args, { stdio: 'inherit', env });
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
const code = await new Promise<number>((resolve) => child.on('close', (c, s) => resolve(c ?? (s ? 1 : 0))));
await dropTestTemplate(adminUrl, template).catch((err: unknown) => log.warn({ err, template }, 'could not drop the test template'));
if (resolved.embedded) {
  await withLock(async () => {
    rmSync(path.join(usersDir, String(process.pid)), { force: true });
    if (liveUsers().length === 0) await resolved.stop();
  });
}
process.exit(code);
