import { setTimeout as sleep } from 'node:timers/promises';
import { startBoss, type PgBoss } from '@wombat/core/platform';
import { insertSchedule, validateScheduleInput, type Schedule, type ScheduleDefinition } from '@wombat/core/schedules';
import type { TestDatabase } from '@wombat/core/testing';
import { createEngine, type Engine, type EngineDeps, type EngineOptions } from '@wombat/scheduler-engine';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export const fastOptions: EngineOptions = {
  enabled: true,
  host: 'test-host',
  pid: process.pid,
  builtIns: [],
  version: 'test',
  reconcileIntervalMs: 60_000,
  heartbeatIntervalMs: 1_000,
  misfireGraceMs: 1_000,
  heldRunCheckMs: 100,
  runReconcileIntervalMs: 5_000,
  maintenanceIntervalMs: 3_600_000,
  taskResultTtlDays: 7,
  runRetentionDays: 90,
};

export async function testBoss(t: Teardown, tdb: TestDatabase): Promise<PgBoss> {
  const boss = await startBoss({ url: tdb.url, role: 'producer', log: tdb.log, poolSize: 3 });
  t.teardown(() => boss.stop({ graceful: false, close: true }));
  return boss;
}

/** An engine over the test database, stopped at teardown (before the pools close). */
export async function startTestEngine(
  t: Teardown,
  tdb: TestDatabase,
  boss: PgBoss,
  opts: Partial<EngineOptions> = {},
  extra: Partial<Pick<EngineDeps, 'clock' | 'onPublished' | 'beforePublish'>> = {},
): Promise<Engine> {
  const engine = createEngine({ db: tdb.db, sql: tdb.sql, boss, log: tdb.log, options: { ...fastOptions, ...opts }, ...extra });
  t.teardown(() => engine.stop());
  await engine.start();
  return engine;
}

export function definition(input: object): ScheduleDefinition {
  const r = validateScheduleInput(input);
  if (!r.ok) throw new Error(r.problems.join('; '));
  return r.value;
}

export function addSchedule(tdb: TestDatabase, input: object): Promise<Schedule> {
  return insertSchedule(tdb.db, definition(input));
}

/** Polls until `check` returns true or the limit passes; the caller asserts afterwards. */
export async function waitFor(check: () => Promise<boolean>, limitMs = 10_000, everyMs = 25): Promise<boolean> {
  const until = Date.now() + limitMs;
  while (Date.now() < until) {
    if (await check()) return true;
    await sleep(everyMs);
  }
  return check();
}

export async function runsOf(tdb: TestDatabase, scheduleId: number) {
  return tdb.db.selectFrom('wombat.runs').selectAll().where('schedule_id', '=', scheduleId).orderBy('scheduled_for').execute();
}
