import t from 'tap';
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { loadConfig } from '@wombat/core/platform';
import { alertFields, createAlerting } from '@wombat/core/alerts';
import { createTestDatabase } from '@wombat/core/testing';

/** A failed or missing database backup is an alert, through the same conditions as every built-in schedule. */
const tdb = await createTestDatabase(t);
const alerting = createAlerting({ db: tdb.db, log: tdb.log, options: { ...loadConfig(alertFields, { ALERT_DAILY_REPORT_TIME: 'off', ALERT_RESOLVE_AFTER_MS: '0' }), timezone: 'UTC' } });
await sql`insert into wombat.engines (id, host, pid, version, heartbeat_interval_ms, enabled) values (gen_random_uuid(), 'test', 1, 'test', 3600000, true)`.execute(tdb.db);

const open = async () =>
  (await sql<{ key: string; kind: string; severity: string; subject: string }>`select key, kind, severity, subject from wombat.alerts where state = 'open' order by key`.execute(tdb.db)).rows;

// The built-in schedule as the engine writes it, made three days ago.
await sql`alter table wombat.schedules disable trigger schedules_bump_version`.execute(tdb.db);
const { rows } = await sql<{ id: number }>`
  insert into wombat.schedules (name, job, kind, times, timezone, built_in, created_at, updated_at)
  values ('database-backup', 'database-backup', 'times', '{03:30}', 'UTC', true, now() - interval '3 days', now() - interval '3 days') returning id`.execute(tdb.db);
await sql`alter table wombat.schedules enable trigger schedules_bump_version`.execute(tdb.db);
const id = rows[0]!.id;

const run = (state: string, hoursAgo: number) =>
  sql`insert into wombat.runs (id, job, trigger, schedule_id, scheduled_for, state, params, attempts, error, started_at, finished_at, created_at)
      values (${randomUUID()}, 'database-backup', 'schedule', ${id}, now() - make_interval(hours => ${hoursAgo}), ${state}, '{}', 2,
              case when ${state} = 'failed' then '{"code":"backup_tool_failed","message":"disk full"}'::jsonb end,
              now() - make_interval(hours => ${hoursAgo}), now() - make_interval(hours => ${hoursAgo}), now() - make_interval(hours => ${hoursAgo}))`.execute(tdb.db);

t.test('no backup for longer than a day and a half is a critical alert', async (t) => {
  await alerting.evaluate();
  t.match(await open(), [{ key: `schedule_stale:${id}`, kind: 'schedule_stale', severity: 'critical', subject: /schedule database-backup has not succeeded/ }]);
});

t.test('a backup that failed for good is a critical alert; a completed one resolves the staleness', async (t) => {
  await run('failed', 1);
  await run('completed', 0);
  await alerting.evaluate();
  const alerts = await open();
  t.match(alerts, [{ kind: 'run_failed', severity: 'critical', subject: /database-backup/ }]);
  t.notOk(alerts.some((a) => a.kind === 'schedule_stale'));
});
