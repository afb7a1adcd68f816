import type { Kysely } from 'kysely';
import { type Logger, SQLSTATE, sqlState } from '@wombat/core/platform';
import { DAILY_PIPELINE, deleteBuiltInSchedule, insertScheduleIfAbsent, SCHEDULE_DEFAULTS, type ScheduleDefinition, upsertBuiltInSchedule } from '@wombat/core/schedules';
import { type CoreTables } from '@wombat/core/tables';
import type { EngineConfig } from './config.ts';

/**
 * The schedules Wombat always has. The engine upserts them by name at start, so
 * the api lists them with the rest; their definitions follow this configuration
 * (edits through the api are refused), an operator may pause and resume them.
 * Adding one is a few lines here.
 */
/** What every schedule the engine writes has in common: skip on overlap, one catch-up, the job's own retries. */
const BASE = {
  params: {},
  overlap: 'skip',
  missed: 'once',
  catchupWindowSeconds: SCHEDULE_DEFAULTS.catchupWindowSeconds,
  catchupMax: 1,
  jitterSeconds: 0,
  timeoutSeconds: null,
  maxRetries: null,
  retryDelaySeconds: null,
  retryBackoff: null,
  status: 'active',
  pausedReason: null,
  after: [] as string[],
  waitForSeconds: SCHEDULE_DEFAULTS.waitForSeconds,
} as const satisfies Partial<ScheduleDefinition>;

/** What a built-in of the daily collection waits for: DAILY_PIPELINE, which `wombat run full` follows too. */
const afterOf = (name: string): string[] => [...(DAILY_PIPELINE.find((n) => n.name === name)?.after ?? [])];

export function builtInSchedules(c: EngineConfig): ScheduleDefinition[] {
  const base = BASE;
  const pad = (n: number) => String(n).padStart(2, '0');
  return [
    { ...base, name: 'collect-symbols', job: 'collect-symbols', trigger: { kind: 'times', times: [c.symbolsScheduleTime] }, timezone: c.timezone },
    // Prices of the day's symbols: at its time at the earliest, once collect-symbols' run of the day has completed.
    { ...base, name: 'collect-prices', job: 'collect-prices', trigger: { kind: 'times', times: [c.pricesScheduleTime] }, timezone: c.timezone, after: afterOf('collect-prices') },
    {
      ...base,
      name: 'daily-candles',
      job: 'collect-prices',
      trigger: { kind: 'times', times: [`${pad(c.schedulerHour)}:${pad(c.schedulerMinute)}`] },
      timezone: 'UTC',
      params: { exchanges: ['upbit'], symbols: c.schedulerSymbols, timeframes: c.schedulerTimeframes },
    },
    ...crawlSchedules(c).map((x) => ({ ...base, ...x })),
    // The workers read BACKUP_DIR and the rest at run time; the schedule carries no params.
    ...(c.backupDir ? [{ ...base, name: 'database-backup', job: 'database-backup' as const, trigger: { kind: 'times' as const, times: [c.backupTime] }, timezone: c.timezone }] : []),
  ];
}

/**
 * The weekly and monthly collection reports: ordinary schedules (edit their time, pause
 * or delete them like any other) that the engine creates when no schedule of their name
 * exists, with REPORT_SCHEDULES on. A deleted one comes back at the next start unless
 * REPORT_SCHEDULES=false; pause it to keep it quiet.
 */
export function reportSchedules(c: EngineConfig): ScheduleDefinition[] {
  if (!c.reportSchedules) return [];
  // A report missed by a day (the engine down over Monday morning) is still worth sending.
  const base = { ...BASE, catchupWindowSeconds: 86_400, timezone: c.timezone };
  return [
    { ...base, name: 'weekly-report', job: 'collection-report', trigger: { kind: 'cron', cron: '0 8 * * 1' }, params: { period: 'week', timezone: c.timezone } },
    { ...base, name: 'monthly-report', job: 'collection-report', trigger: { kind: 'cron', cron: '0 8 1 * *' }, params: { period: 'month', timezone: c.timezone } },
  ];
}

/** A built-in schedule left out because its configuration is missing; the engine says why and removes a stale one. */
export interface DisabledBuiltIn {
  name: string;
  reason: string;
}

type CrawlSchedule = Pick<ScheduleDefinition, 'name' | 'job' | 'trigger' | 'timezone'>;

function crawlSchedules(c: EngineConfig): CrawlSchedule[] {
  const pad = (n: number) => String(n).padStart(2, '0');
  const out: CrawlSchedule[] = [];
  // The worker reads the sources and subreddits at run time: a schedule carries no params, so an
  // edit of the file or the list applies to the next run without touching the schedule.
  if (c.priceCrawlSources) {
    out.push({ name: 'crawl-prices', job: 'crawl-prices', trigger: { kind: 'times', times: [`${pad(c.priceCrawlHour)}:${pad(c.priceCrawlMinute)}`] }, timezone: c.timezone });
  }
  if (c.snapshotDir) out.push({ name: 'data-snapshot', job: 'data-snapshot', trigger: { kind: 'times', times: [c.snapshotTime] }, timezone: c.timezone });
  if (c.redditSubreddits) {
    out.push({ name: 'collect-posts', job: 'collect-posts', trigger: { kind: 'times', times: [`${pad(c.redditCrawlHour)}:${pad(c.redditCrawlMinute)}`] }, timezone: c.timezone });
  }
  return out;
}

/** The built-ins this configuration turns off, each with the reason the engine logs once at start. */
export function disabledBuiltIns(c: EngineConfig): DisabledBuiltIn[] {
  const out: DisabledBuiltIn[] = [];
  if (!c.priceCrawlSources) out.push({ name: 'crawl-prices', reason: 'PRICE_CRAWL_SOURCES is not set: no price sources to crawl' });
  if (!c.snapshotDir) out.push({ name: 'data-snapshot', reason: 'SNAPSHOT_DIR is not set: no data snapshots' });
  if (!c.redditSubreddits) out.push({ name: 'collect-posts', reason: 'REDDIT_SUBREDDITS is not set: no subreddits to collect' });
  if (!c.backupDir) out.push({ name: 'database-backup', reason: 'BACKUP_DIR is not set: no database backups are taken' });
  return out;
}

/** Writes the built-in schedules (upserted by name) and removes the ones turned off, saying why. */
export async function seedBuiltIns(db: Kysely<CoreTables>, log: Logger, builtIns: ScheduleDefinition[], disabled: DisabledBuiltIn[], defaults: ScheduleDefinition[] = []): Promise<void> {
  for (const def of builtIns) await upsertBuiltInSchedule(db, def);
  for (const def of defaults) if (await insertScheduleIfAbsent(db, def)) log.info({ schedule: def.name }, `schedule ${def.name} created (an ordinary schedule: edit, pause or delete it as you like)`);
  for (const off of disabled) {
    try {
      const removed = await deleteBuiltInSchedule(db, off.name);
      log.info({ schedule: off.name, removed }, `built-in schedule ${off.name} is off: ${off.reason}`);
    } catch (err) {
      // Schedules wait for it (after): it stays, and so do they, until an operator changes them.
      if (sqlState(err) !== SQLSTATE.checkViolation) throw err;
      log.warn({ schedule: off.name, err }, `built-in schedule ${off.name} is off (${off.reason}) but kept: ${(err as Error).message}`);
    }
  }
}
