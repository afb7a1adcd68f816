/**
 * The platform every Wombat process stands on: errors, configuration, logging, the
 * process lifecycle and its loops and deadlines, systemd notification, the database
 * (pools, driver, deadlines, the PgBouncer check, embedded PostgreSQL), pg-boss's
 * wiring and the migration runner. It knows no domain: no table, no job, no state.
 * Import as `@wombat/core/platform`.
 */
export * from './errors.ts';
export * from './config.ts';
export * from './common-config.ts';
export * from './legacy-settings.ts';
export * from './logger.ts';
export * from './lifecycle.ts';
export * from './process.ts';
export * from './loops.ts';
export * from './deadline.ts';
export * from './backoff.ts';
export * from './systemd-notify.ts';
export * from './db.ts';
export * from './db-types.ts';
export * from './pooler.ts';
export * from './embedded-postgres.ts';
export { withDirLock } from './embedded-postgres-owner.ts';
export * from './boss.ts';
export * from './error-reporting.ts';
export * from './json-text.ts';
export * from './migrate.ts';
