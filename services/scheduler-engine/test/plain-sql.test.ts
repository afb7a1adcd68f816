import t from 'tap';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { sql } from 'kysely';
import { repoRoot } from '@wombat/core/platform';
import { getSchedule, insertSchedule, updateSchedule, upsertBuiltInSchedule } from '@wombat/core/schedules';
import { createTestDatabase } from '@wombat/core/testing';
import { addSchedule, definition, runsOf, startTestEngine, testBoss, waitFor } from './helpers.ts';

/**
 * Schedules written by hand in SQL (migration 0012): the database derives kind and
 * every_seconds, normalises the trigger, and refuses a row nobody could run with a message
 * that says what to fix; the engine follows such a row like any other.
 */
t.test('a schedule inserted with plain SQL, trigger column only, is completed by the database and published by the engine', async (t) => {
  const tdb = await createTestDatabase(t);
  const boss = await testBoss(t, tdb);
  await startTestEngine(t, tdb, boss, { reconcileIntervalMs: 3_600_000 });
  const inserted = await sql<{ id: number; kind: string; every: string; every_seconds: number; timezone: string }>`
    insert into wombat.schedules (name, job, every, overlap) values ('by-hand', 'canary', ' 1s ', 'allow')
    returning id, kind, every, every_seconds, timezone`.execute(tdb.db);
  const row = inserted.rows[0]!;
  t.match(row, { kind: 'every', every: '1s', every_seconds: 1, timezone: 'UTC' }, 'kind and every_seconds derived, the interval trimmed');
  t.ok(await waitFor(async () => (await runsOf(tdb, row.id)).length >= 2, 6_000), 'the engine publishes it without a restart');
  const [run] = await runsOf(tdb, row.id);
  const jobs = await sql<{ state: string }>`select state from pgboss.job where id = ${run!.id}::uuid`.execute(tdb.db);
  t.equal(jobs.rows.length, 1, 'each run has its pg-boss job');
  const next = await sql<{ next_run_at: Date | null }>`select next_run_at from wombat.schedules where id = ${row.id}`.execute(tdb.db);
  t.ok(next.rows[0]!.next_run_at, 'the engine keeps its next run');

  await sql`insert into wombat.schedules (name, job, times, timezone, status) values ('twice-a-day', 'canary', '{18:00,09:00}', 'Asia/Seoul', 'paused')`.execute(tdb.db);
  const times = await sql<{ kind: string; times: string[] }>`select kind, times from wombat.schedules where name = 'twice-a-day'`.execute(tdb.db);
  t.same(times.rows[0], { kind: 'times', times: ['09:00', '18:00'] }, 'times sorted');
  await sql`update wombat.schedules set cron = '0  9 * * *' where name = 'twice-a-day'`.execute(tdb.db);
  const edited = await sql<{ kind: string; cron: string; times: string[] | null }>`select kind, cron, times from wombat.schedules where name = 'twice-a-day'`.execute(tdb.db);
  t.same(edited.rows[0], { kind: 'cron', cron: '0 9 * * *', times: null }, 'an update that sets another trigger column replaces the old trigger');
});

t.test('bad rows written in SQL are refused with a message that says what to fix', async (t) => {
  const tdb = await createTestDatabase(t);
  const cases: [string, RegExp][] = [
    [`insert into wombat.schedules (name, job, every) values ('x', 'canary', '5x')`, /^schedules: every '5x' is not an interval like 30s, 5m, 1h, 1d/],
    [`insert into wombat.schedules (name, job, every) values ('x', 'canary', '0s')`, /^schedules: every '0s' is not an interval/],
    [`insert into wombat.schedules (name, job, every) values ('x', 'canary', '2mo')`, /^schedules: every '2mo' is not an interval.*from 1s to 1mo/],
    [`insert into wombat.schedules (name, job) values ('x', 'canary')`, /^schedules: give exactly one of cron, every or times \(schedule 'x'\)/],
    [`insert into wombat.schedules (name, job, every, cron) values ('x', 'canary', '1h', '0 * * * *')`, /^schedules: give exactly one of cron, every or times/],
    [`insert into wombat.schedules (name, job, kind, every) values ('x', 'canary', 'cron', '1h')`, /^schedules: kind 'cron' does not match the trigger given \(every\)/],
    [`insert into wombat.schedules (name, job, cron) values ('x', 'canary', 'every tuesday')`, /^schedules: cron 'every tuesday' has 2 fields; give 5/],
    [`insert into wombat.schedules (name, job, times) values ('x', 'canary', '{9am}')`, /^schedules: times '9am' must be HH:MM or HH:MM:SS/],
    [`insert into wombat.schedules (name, job, every, timezone) values ('x', 'canary', '1h', 'Mars/Base')`, /^schedules: timezone 'Mars\/Base' is not a time zone/],
    [`insert into wombat.schedules (name, job, every) values ('x', 'mine-bitcoin', '1h')`, /^schedules: job 'mine-bitcoin' is not a job type; one of .*canary.*fetch-candles/],
    [`insert into wombat.schedules (name, job, every, params) values ('x', 'canary', '1h', '[]')`, /^schedules: params must be a JSON object/],
  ];
  for (const [statement, message] of cases) {
    await t.rejects(sql.raw(statement).execute(tdb.db), { code: '23514', message }, statement);
  }
  await sql`insert into wombat.schedules (name, job, every) values ('good', 'canary', '1h')`.execute(tdb.db);
  await t.rejects(sql`update wombat.schedules set every = 'soon' where name = 'good'`.execute(tdb.db), { message: /^schedules: every 'soon' is not an interval/ }, 'an update too');
  const count = await sql<{ n: number }>`select count(*)::int as n from wombat.schedules where name <> 'good' and not built_in`.execute(tdb.db);
  t.equal(count.rows[0]!.n, 0, 'nothing refused was stored');
});

t.test('the store\'s own writes go through unchanged', async (t) => {
  const tdb = await createTestDatabase(t);
  const s = await addSchedule(tdb, { name: 'stored', job: 'canary', every: '5m' });
  t.match(s, { trigger: { kind: 'every', every: '5m', everySeconds: 300 }, version: 1 });
  const cron = await updateSchedule(tdb.db, s.id, { trigger: { kind: 'cron', cron: '*/5 * * * *' } });
  t.match(cron, { trigger: { kind: 'cron', cron: '*/5 * * * *' }, version: 2 }, 'a trigger change through the store, one version step');
  const times = await updateSchedule(tdb.db, s.id, { trigger: { kind: 'times', times: ['06:00', '07:30'] } });
  t.match(times, { trigger: { kind: 'times', times: ['06:00', '07:30'] }, version: 3 });
  const builtIn = await upsertBuiltInSchedule(tdb.db, definition({ name: 'built', job: 'canary', cron: '0 9 * * *' }));
  const again = await upsertBuiltInSchedule(tdb.db, definition({ name: 'built', job: 'canary', cron: '0 9 * * *' }));
  t.equal(again.version, builtIn.version, 'an unchanged built-in upsert is no edit');
  await sql`update wombat.schedules set next_run_at = now(), last_run_at = now() where id = ${s.id}`.execute(tdb.db);
  t.equal((await getSchedule(tdb.db, s.id))!.version, 3, 'bookkeeping is no edit');
  // What the database refuses although the caller's checks let it through reaches the api as a 400, not a 500.
  await t.rejects(insertSchedule(tdb.db, { ...definition({ name: 'elsewhere', job: 'canary', every: '1h' }), timezone: 'Mars/Base' }), {
    name: 'ValidationError',
    code: 'invalid_input',
    message: /^schedules: timezone 'Mars\/Base' is not a time zone/,
  });
});

t.test('the README\'s plain SQL examples run as written', async (t) => {
  const tdb = await createTestDatabase(t);
  const readme = readFileSync(path.join(repoRoot, 'services/scheduler-engine/README.md'), 'utf8');
  const block = /```sql\n([^]*?)```/.exec(readme.slice(readme.indexOf('Plain SQL needs only')))![1]!;
  const statements = block.split(';').map((x) => x.replace(/--.*$/gm, '').trim()).filter(Boolean);
  t.equal(statements.length, 3);
  for (const statement of statements) await sql.raw(statement).execute(tdb.db);
  const rows = await sql<{ name: string; kind: string }>`select name, kind from wombat.schedules where not built_in order by name`.execute(tdb.db);
  t.same(rows.rows, [{ name: 'btc-hourly', kind: 'cron' }, { name: 'canary-5m', kind: 'times' }]);
});

t.test('a dependency written in plain SQL is followed by the engine; a cycle written in SQL is refused and changes nothing', async (t) => {
  const tdb = await createTestDatabase(t);
  const boss = await testBoss(t, tdb);
  await startTestEngine(t, tdb, boss, { reconcileIntervalMs: 3_600_000 });
  await sql`insert into wombat.schedules (name, job, every, overlap) values ('sql-a', 'canary', '1s', 'allow'), ('sql-b', 'canary', '1s', 'allow')`.execute(tdb.db);
  const ids = await sql<{ id: number; name: string }>`select id, name from wombat.schedules where name in ('sql-a', 'sql-b') order by name`.execute(tdb.db);
  const [a, b] = ids.rows;
  t.ok(await waitFor(async () => (await runsOf(tdb, b!.id)).some((r) => r.state === 'queued'), 6_000), 'both publish on their own');
  await sql`update wombat.schedules set after = '{sql-a}' where name = 'sql-b'`.execute(tdb.db);
  // No worker runs sql-a's jobs here: sql-b's occurrences from now on wait for them.
  t.ok(await waitFor(async () => (await runsOf(tdb, b!.id)).some((r) => r.state === 'waiting'), 6_000), 'the engine records sql-b waiting without a restart');
  const waiting = (await runsOf(tdb, b!.id)).find((r) => r.state === 'waiting')!;
  t.match(waiting.reason, /waits for sql-a \(after\)/);

  const cycle = await sql`update wombat.schedules set after = '{sql-b}' where name = 'sql-a'`.execute(tdb.db).catch((e: unknown) => e);
  t.match(cycle, { code: '23514', message: /after would make a cycle: 'sql-a' -> 'sql-b' -> 'sql-a'/ });
  const stored = await sql<{ after: string[]; version: number }>`select after, version from wombat.schedules where id = ${a!.id}`.execute(tdb.db);
  t.same(stored.rows[0], { after: [], version: 1 }, 'sql-a is as it was');
  t.ok(await waitFor(async () => (await runsOf(tdb, a!.id)).filter((r) => r.state === 'queued').length >= 3, 6_000), 'and keeps publishing without waiting');
  t.notOk((await runsOf(tdb, a!.id)).some((r) => r.state === 'waiting'));
});
