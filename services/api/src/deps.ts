import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { type ErrorReporter, type Logger, type PgBoss, type Sql } from '@wombat/core/platform';
import { type Thresholds, type WatchedPath } from '@wombat/core/alerts';
import { type CoreTables } from '@wombat/core/tables';
import type { AlertChannelConfig } from '@wombat/core/alerts';
import type { FastifyBaseLogger, FastifyInstance, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify';
import type { Kysely } from 'kysely';
import type { AuthOptions } from './auth.ts';

/** What the api's routes are given: its pools, pg-boss, logging and settings. */
export interface AppDeps {
  db: Kysely<CoreTables>;
  sql: Sql;
  /** A pg-boss instance in the 'producer' role: sends, cancels; never works or maintains. */
  boss: PgBoss;
  log: Logger;
  auth: AuthOptions;
  /** Shown as expires_at of finished tasks; the engine's maintenance does the removing. */
  taskResultTtlDays: number;
  bodyLimitBytes?: number;
  /** Time zone of schedules created without one (TZ, as the engine's built-ins); UTC when unset. */
  defaultTimezone?: string;
  /** A task submission not committed within this is answered 503 (API_SUBMIT_TIMEOUT_MS). */
  submitTimeoutMs?: number;
  /** /health deadline for the database ping, in ms. */
  healthPingTimeoutMs?: number;
  /** An abandoned submission write unsettled this long makes /health report the writer stuck. */
  writerStuckAfterMs?: number;
  /** Alert channels, for POST /api/alerts/test; unset: none configured. */
  alertChannels?: AlertChannelConfig;
  /** ALERT_STALE_FACTOR, for the schedules' stale limit in /metrics (default 1.5). */
  alertStaleFactor?: number;
  /** Levels the dashboard colours its figures by (the alerts' thresholds); default DEFAULT_THRESHOLDS. */
  thresholds?: Thresholds;
  /** Directories whose file systems the overview and /metrics show (DATA_ROOT, BACKUP_DIR); default none. */
  watchedPaths?: WatchedPath[];
  /** Where requests that failed with a 500 are reported (SENTRY_DSN); unset: nowhere. */
  reporter?: ErrorReporter;
}

/** The api's Fastify instance, typed by its TypeBox schemas. */
export type App = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, FastifyBaseLogger, TypeBoxTypeProvider>;
