import t from 'tap';
import { AppError, startBoss, ValidationError } from '@wombat/core/platform';
import {
  deleteSchedule,
  getSchedule,
  insertSchedule,
  listEngines,
  listSchedules,
  setScheduleStatus,
  updateSchedule,
  upsertBuiltInSchedule,
  validateScheduleInput,
  type ScheduleDefinition,
  type SchedulerTables,
} from '@wombat/core/schedules';
import { triggerSchedule } from '@wombat/core/runs';
import { createTestDatabase } from '@wombat/core/testing';
import { sql } from 'kysely';

const tdb = await createTestDatabase(t);
const db = tdb.db;
const boss = await startBoss({ url: tdb.url, role: 'producer', log: tdb.log, poolSize: 2 });
t.teardown(() => boss.stop({ graceful: false, close: true }));

function def(input: object): ScheduleDefinition {
  const r = validateScheduleInput(input);
  if (!r.ok) throw new Error(r.problems.join('; '));
  return r.value;
}

t.test('inserts and reads back every kind of trigger', async (t) => {
  const a = await insertSchedule(db, def({ name: 'store-cron', job: 'canary', cron: '*/5 * * * *', timezone: 'Europe/Berlin' }));
  const b = await insertSchedule(db, def({ name: 'store-every', job: 'canary', every: '90s' }));
  const c = await insertSchedule(db, def({ name: 'store-times', job: 'canary', times: ['18:00', '09:00'], jitter_seconds: 30 }));
  t.same(a.trigger, { kind: 'cron', cron: '*/5 * * * *' });
  t.equal(a.timezone, 'Europe/Berlin');
  t.same(b.trigger, { kind: 'every', every: '90s', everySeconds: 90 });
  t.same((await getSchedule(db, c.id))?.trigger, { kind: 'times', times: ['09:00', '18:00'] });
  t.equal(c.jitterSeconds, 30);
  t.equal(a.version, 1);
  const params = { exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1H', daysBack: 3 };
  const withParams = await insertSchedule(db, def({ name: 'store-params', job: 'fetch-candles', every: '1h', params }));
  t.same((await getSchedule(db, withParams.id))?.params, params, 'params come back as the object stored');
  t.ok((await listSchedules(db)).length >= 3);
  t.equal(await getSchedule(db, 999_999), null);
});

t.test('a taken name is a distinguishable error', async (t) => {
  await insertSchedule(db, def({ name: 'dup', job: 'canary', every: '1h' }));
  const err = await insertSchedule(db, def({ name: 'dup', job: 'canary', every: '2h' })).catch((e: unknown) => e);
  t.ok(err instanceof AppError && err.code === 'schedule_name_taken', 'code schedule_name_taken');
  const other = await insertSchedule(db, def({ name: 'dup-2', job: 'canary', every: '1h' }));
  const err2 = await updateSchedule(db, other.id, { name: 'dup' }).catch((e: unknown) => e);
  t.ok(err2 instanceof AppError && err2.code === 'schedule_name_taken');
});

t.test('edits bump the version; engine bookkeeping does not', async (t) => {
  const s = await insertSchedule(db, def({ name: 'versioned', job: 'canary', every: '1h' }));
  const edited = await updateSchedule(db, s.id, { trigger: { kind: 'every', every: '2h', everySeconds: 7200 } });
  t.equal(edited?.version, 2);
  await db.withTables<SchedulerTables>().updateTable('wombat.schedules').set({ next_run_at: new Date(), last_run_at: new Date() }).where('id', '=', s.id).execute();
  t.equal((await getSchedule(db, s.id))?.version, 2);
  const paused = await setScheduleStatus(db, s.id, 'paused', 'maintenance');
  t.equal(paused?.version, 3);
  t.equal(paused?.pausedReason, 'maintenance');
  const resumed = await setScheduleStatus(db, s.id, 'active', 'ignored');
  t.equal(resumed?.pausedReason, null);
  t.equal(await updateSchedule(db, 424242, { name: 'x' }), null);
  t.equal(await setScheduleStatus(db, 424242, 'paused'), null);
});

t.test('an update whose params do not fit the job is refused and stores nothing', async (t) => {
  const s = await insertSchedule(db, def({ name: 'params-check', job: 'canary', every: '1h' }));
  const err = await updateSchedule(db, s.id, { job: 'fetch-candles' }).catch((e: unknown) => e);
  t.ok(err instanceof ValidationError);
  t.equal((await getSchedule(db, s.id))?.job, 'canary');
});

t.test('notifies listeners on definition changes only', async (t) => {
  const seen: string[] = [];
  const listener = await tdb.sql.listen('wombat_schedules', (payload) => seen.push(payload));
  t.teardown(() => listener.unlisten());
  const s = await insertSchedule(db, def({ name: 'notified', job: 'canary', every: '1h' }));
  await db.withTables<SchedulerTables>().updateTable('wombat.schedules').set({ next_run_at: new Date() }).where('id', '=', s.id).execute();
  await updateSchedule(db, s.id, { jitterSeconds: 5 });
  await deleteSchedule(db, s.id);
  await sql`select pg_sleep(0.05)`.execute(db);
  for (let i = 0; i < 50 && seen.length < 3; i++) await new Promise((r) => setTimeout(r, 20));
  t.same(seen, [String(s.id), String(s.id), String(s.id)], 'insert, edit and delete; not the bookkeeping update');
});

t.test('built-in schedules: upsert keeps the operator status, refuses edits and deletion', async (t) => {
  const b = await upsertBuiltInSchedule(db, def({ name: 'built-in-x', job: 'collect-symbols', times: ['00:00'], timezone: 'Asia/Seoul' }));
  t.equal(b.builtIn, true);
  await setScheduleStatus(db, b.id, 'paused', 'holiday');
  const again = await upsertBuiltInSchedule(db, def({ name: 'built-in-x', job: 'collect-symbols', times: ['00:05'], timezone: 'Asia/Seoul' }));
  t.equal(again.id, b.id);
  t.same(again.trigger, { kind: 'times', times: ['00:05'] });
  t.equal(again.status, 'paused');
  t.equal(again.pausedReason, 'holiday');
  const e1 = await updateSchedule(db, b.id, { jitterSeconds: 3 }).catch((e: unknown) => e);
  t.ok(e1 instanceof AppError && e1.code === 'schedule_built_in');
  const e2 = await deleteSchedule(db, b.id).catch((e: unknown) => e);
  t.ok(e2 instanceof AppError && e2.code === 'schedule_built_in');
  await insertSchedule(db, def({ name: 'user-owned', job: 'canary', every: '1h' }));
  const e3 = await upsertBuiltInSchedule(db, def({ name: 'user-owned', job: 'canary', every: '2h' })).catch((e: unknown) => e);
  t.ok(e3 instanceof AppError && e3.code === 'schedule_name_taken');
});

t.test('a manual trigger publishes a run and a job now, even when paused', async (t) => {
  const s = await insertSchedule(db, def({ name: 'manual', job: 'canary', every: '1d', status: 'paused', max_retries: 2 }));
  const id = await triggerSchedule(db, boss, s.id);
  t.ok(id);
  const run = await db.selectFrom('wombat.runs').selectAll().where('id', '=', id!).executeTakeFirstOrThrow();
  t.equal(run.trigger, 'manual');
  t.equal(run.schedule_id, s.id);
  t.equal(run.state, 'queued');
  const job = await boss.getJobById('canary', id!);
  t.equal(job?.retryLimit, 2);
  t.equal(await triggerSchedule(db, boss, 777_777), null);
  const bad = await triggerSchedule(db, boss, s.id, { params: { nope: 1 } }).catch((e: unknown) => e);
  t.ok(bad instanceof ValidationError);
});

t.test('lists engines with liveness judged by the database clock', async (t) => {
  const e = db.withTables<SchedulerTables>();
  await e.insertInto('wombat.engines').values({ id: crypto.randomUUID(), host: 'h1', pid: 1, version: '0.1.0', heartbeat_interval_ms: 5000, enabled: true }).execute();
  await e
    .insertInto('wombat.engines')
    .values({ id: crypto.randomUUID(), host: 'h2', pid: 2, version: '0.1.0', heartbeat_interval_ms: 5000, enabled: false, last_beat_at: new Date(Date.now() - 3_600_000) })
    .execute();
  const engines = await listEngines(db);
  t.same(engines.map((x) => [x.host, x.alive, x.enabled]), [['h1', true, true], ['h2', false, false]]);
});
