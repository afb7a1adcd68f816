/**
 * Production migration entry point: run once per deploy, before (re)starting the
 * services. Applies Wombat's migrations and installs or upgrades pg-boss's schema
 * and queues. Services themselves never migrate.
 *
 *   DATABASE_URL=postgres://... npm run migrate     (DATABASE_URL=embedded: the local embedded server)
 *
 * With DATABASE_SESSION_URL set (DATABASE_URL is then a transaction pooler) the
 * migrations run there: long DDL with no statement deadline, on a session of its own.
 */
import { ConfigError, DATABASE_URL_MISSING, configOrExit, isJournalStream, createLogger, databaseFields, loadConfig, processFields, redactUrl, resolveDatabase, resolveFromRoot, warnObsoleteSettings } from '@wombat/core/platform';
import { migrationFields } from '@wombat/core/jobs';
import { migrateAll } from '@wombat/core/setup';

const schema = { ...databaseFields, ...processFields, ...migrationFields };
const config = configOrExit((env) => loadConfig(schema, env), process);
if (config.databaseUrl === undefined) {
  process.stderr.write(`${new ConfigError([DATABASE_URL_MISSING]).message}\n`);
  process.exit(1);
}
const log = createLogger({ name: 'migrate', level: config.logLevel, format: config.logFormat, isTty: process.stdout.isTTY, journal: isJournalStream(process.env) });
warnObsoleteSettings(process.env, log);
try {
  const db = await resolveDatabase({
    databaseUrl: config.databaseSessionUrl ?? config.databaseUrl,
    embeddedDir: resolveFromRoot(config.embeddedPgDir),
    embeddedPort: config.embeddedPgPort,
    log,
  });
  try {
    const { applied } = await migrateAll({ url: db.url, log, outageGraceSeconds: config.outageGraceSeconds, jobTimeouts: config.jobTimeouts, jobKeepHours: config.jobKeepHours });
    log.info({ database: redactUrl(db.url), applied }, 'database ready');
  } finally {
    await db.stop();
  }
} catch (err) {
  log.fatal({ err }, 'migration failed');
  log.flush();
  process.exitCode = 1;
}
