import { alertConfigProblems, alertFields, watchedPathFields } from '@wombat/core/alerts';
import { bool, ConfigError, type ConfigOf, databaseFields, int, list, loadConfig as load, optionalStr, processFields, timeOfDay, timeZone } from '@wombat/core/platform';
import { jobHeartbeatFields, TIMEFRAMES } from '@wombat/core/jobs';
import { backupFields } from '@wombat/core/backup';

function timeframe(v: string): string {
  if (!(TIMEFRAMES as readonly string[]).includes(v)) throw new Error(`has timeframe "${v}"; known timeframes: ${TIMEFRAMES.join(', ')}`);
  return v;
}

function symbol(v: string): string {
  if (!/^[A-Za-z0-9._-]{1,40}$/.test(v)) throw new Error(`has symbol "${v}"; symbols are letters, digits, '.', '_' or '-', like KRW-BTC`);
  return v;
}

export const engineSchema = {
  ...databaseFields,
  ...processFields,
  ...jobHeartbeatFields,
  timezone: timeZone('TZ', 'time zone of the built-in collect-symbols and collect-prices schedules (IANA)', { default: 'Asia/Seoul' }),
  enableScheduler: bool('ENABLE_SCHEDULER', 'false: the engine runs, publishes nothing on its own (manual triggers still work)', { default: true }),
  schedulerHour: int('SCHEDULER_HOUR', 'hour (UTC) of the daily candle collection', { default: 9, min: 0, max: 23 }),
  schedulerMinute: int('SCHEDULER_MINUTE', 'minute of the daily candle collection', { default: 0, min: 0, max: 59 }),
  schedulerSymbols: list('SCHEDULER_SYMBOLS', 'Upbit symbols of the daily candle collection, comma-separated', {
    default: ['KRW-BTC', 'KRW-ETH', 'KRW-XRP'],
    item: symbol,
  }),
  schedulerTimeframes: list('SCHEDULER_TIMEFRAMES', 'timeframes of the daily candle collection, comma-separated', { default: ['1H', '1D'], item: timeframe }),
  symbolsScheduleTime: timeOfDay('SYMBOLS_SCHEDULE_TIME', 'time of day (in TZ) of the daily symbol collection', '00:00'),
  pricesScheduleTime: timeOfDay('PRICES_SCHEDULE_TIME', 'time of day (in TZ) of the daily price collection', '00:02'),
  priceCrawlHour: int('PRICE_CRAWL_HOUR', 'hour (in TZ) of the daily price crawl', { default: 9, min: 0, max: 23 }),
  priceCrawlMinute: int('PRICE_CRAWL_MINUTE', 'minute of the daily price crawl', { default: 0, min: 0, max: 59 }),
  priceCrawlSources: optionalStr('PRICE_CRAWL_SOURCES', 'sources file of the price crawl (JSON or YAML); unset: the price crawl schedule is off'),
  redditCrawlHour: int('REDDIT_CRAWL_HOUR', 'hour (in TZ) of the daily community-post collection', { default: 10, min: 0, max: 23 }),
  redditCrawlMinute: int('REDDIT_CRAWL_MINUTE', 'minute of the daily community-post collection', { default: 0, min: 0, max: 59 }),
  reportSchedules: bool('REPORT_SCHEDULES', 'true: the engine creates the schedules weekly-report (Mondays 08:00 in TZ) and monthly-report (the 1st, 08:00) when absent; ordinary schedules after that', { default: true }),
  snapshotDir: optionalStr('SNAPSHOT_DIR', 'directory of the dated DATA_ROOT snapshots; set: the built-in data-snapshot schedule runs daily at SNAPSHOT_TIME; unset: it is off'),
  snapshotTime: timeOfDay('SNAPSHOT_TIME', 'time of day (in TZ) of the daily data snapshot', '03:45'),
  backupDir: backupFields.backupDir,
  backupTime: backupFields.backupTime,
  redditSubreddits: optionalStr('REDDIT_SUBREDDITS', 'subreddits of the community-post collection, comma-separated; unset: that schedule is off'),
  reconcileIntervalMs: int('ENGINE_RECONCILE_INTERVAL_MS', 'full re-read of the schedules table, besides change notifications', {
    default: 30_000,
    min: 100,
    max: 3_600_000,
  }),
  heartbeatIntervalMs: int('ENGINE_HEARTBEAT_INTERVAL_MS', 'engine heartbeat (and database clock sync) interval', { default: 5_000, min: 100, max: 300_000 }),
  misfireGraceMs: int('ENGINE_MISFIRE_GRACE_MS', 'an occurrence published later than this is late and follows its missed-run policy', {
    default: 2_000,
    min: 10,
    max: 3_600_000,
  }),
  heldRunCheckMs: int('ENGINE_HELD_RUN_CHECK_MS', 'how often runs held by overlap queue-one or waiting for their prerequisites (after) are checked and released, and backfills release children into free slots', {
    default: 1_000,
    min: 50,
    max: 600_000,
  }),
  runReconcileIntervalMs: int('ENGINE_RUN_RECONCILE_INTERVAL_MS', 'how often unfinished runs are checked against pg-boss and worker heartbeats (lost runs end failed/worker_lost or retrying)', {
    default: 5_000,
    min: 100,
    max: 60_000,
  }),
  runCountsFoldMs: int('ENGINE_RUN_COUNTS_FOLD_MS', 'how often the run roll-ups\' deltas are folded into their per-minute counts (reads add the unfolded ones)', {
    default: 5_000,
    min: 100,
    max: 600_000,
  }),
  maintenanceIntervalMs: int('ENGINE_MAINTENANCE_INTERVAL_MS', 'how often finished runs past their retention are purged', {
    default: 600_000,
    min: 1_000,
    max: 86_400_000,
  }),
  taskResultTtlDays: int('TASK_RESULT_TTL_DAYS', 'finished api task runs are deleted after this many days', { default: 7, min: 1, max: 3650 }),
  runRetentionDays: int('RUN_RETENTION_DAYS', 'other finished runs (history, dead letters) are deleted after this many days', {
    default: 90,
    min: 1,
    max: 3650,
  }),
  ...alertFields,
  ...watchedPathFields,
};


export type EngineConfig = ConfigOf<typeof engineSchema>;

/** Reads the engine's configuration; throws one ConfigError naming every bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): EngineConfig {
  const config = load(engineSchema, env);
  const problems = alertConfigProblems(config);
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
