import t from 'tap';
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { loadConfig, startBoss } from '@wombat/core/platform';
import { alertFields, createAlerting } from '@wombat/core/alerts';
import { FORCED_RELEASE_REASON, recordOccurrences, releaseWaitingRuns, triggerSchedule, waitingReason } from '@wombat/core/runs';
import { insertSchedule, setScheduleStatus, validateScheduleInput, type Schedule, type ScheduleDefinition } from '@wombat/core/schedules';
import { createTestDatabase } from '@wombat/core/testing';

const tdb = await createTestDatabase(t);
const db = tdb.db;
const boss = await startBoss({ url: tdb.url, role: 'producer', log: tdb.log, poolSize: 4 });
t.teardown(() => boss.stop({ graceful: false, close: true }));

function def(input: object): ScheduleDefinition {
  const r = validateScheduleInput(input);
  if (!r.ok) throw new Error(r.problems.join('; '));
  return r.value;
}

const DAY = '2026-03-10';
const at = (time: string) => new Date(`${DAY}T${time}Z`);
let n = 0;

/** A prerequisite (daily at 00:00 UTC) and a schedule that waits for it (daily at 00:02, wait_for 10 minutes). */
async function pair(extra: object = {}): Promise<{ a: Schedule; b: Schedule }> {
  n++;
  const a = await insertSchedule(db, def({ name: `pre-${n}`, job: 'canary', times: ['00:00'] }));
  const b = await insertSchedule(db, def({ name: `post-${n}`, job: 'canary', times: ['00:02'], after: [a.name], wait_for: '10m', ...extra }));
  return { a, b };
}

async function waitingRun(b: Schedule): Promise<string> {
  const id = randomUUID();
  await recordOccurrences(db, [{ id, schedule_id: b.id, job: b.job, scheduled_for: at('00:02:00').toISOString(), state: 'waiting', reason: waitingReason(b), params: {} }]);
  return id;
}

async function prerequisiteRun(a: Schedule, state: string, opts: { time?: string; trigger?: string; requeuedAs?: string } = {}): Promise<string> {
  const id = randomUUID();
  await sql`insert into wombat.runs (id, job, trigger, schedule_id, scheduled_for, state, params, requeued_as)
            values (${id}, 'canary', ${opts.trigger ?? 'schedule'}, ${a.id}, ${at(opts.time ?? '00:00:00').toISOString()}, ${state}, '{}', ${opts.requeuedAs ?? null})`.execute(db);
  return id;
}

const runOf = (id: string) => db.selectFrom('wombat.runs').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
const clock = (time: string) => at(time);

t.test('a waiting run is released once its prerequisite\'s run of the day completes, and only once', async (t) => {
  const { a, b } = await pair();
  const id = await waitingRun(b);
  t.same(await releaseWaitingRuns(db, boss, clock('00:03:00')), [], 'no run of the prerequisite yet: keeps waiting');
  const pre = await prerequisiteRun(a, 'running');
  t.same(await releaseWaitingRuns(db, boss, clock('00:03:00')), [], 'prerequisite running: keeps waiting');
  await sql`update wombat.runs set state = 'retrying' where id = ${pre}`.execute(db);
  t.same(await releaseWaitingRuns(db, boss, clock('00:03:00')), [], 'prerequisite retrying: keeps waiting');
  await sql`update wombat.runs set state = 'completed' where id = ${pre}`.execute(db);
  // Several engines release at once: each row is released by one of them.
  const rounds = await Promise.all([1, 2, 3].map(() => releaseWaitingRuns(db, boss, clock('00:03:00'))));
  t.match(rounds.flat(), [{ id, scheduleId: b.id, schedule: b.name, state: 'queued' }]);
  const run = await runOf(id);
  t.equal(run.state, 'queued');
  t.equal(run.reason, null);
  t.ok(run.published_at);
  t.ok(await boss.getJobById('canary', id), 'its job is in pg-boss');
  t.same(await releaseWaitingRuns(db, boss, clock('00:03:00')), []);
});

t.test('a prerequisite that failed for good skips the run with dependency_failed; a requeue is followed', async (t) => {
  const { a, b } = await pair();
  const id = await waitingRun(b);
  await prerequisiteRun(a, 'completed', { time: '00:00:00', trigger: 'manual' });
  const requeue = await prerequisiteRun(a, 'running', { time: '00:00:30', trigger: 'manual' });
  await prerequisiteRun(a, 'failed', { requeuedAs: requeue });
  // The requeue was asked for later but is scheduled in the same day: it is the latest; make the failed one latest instead.
  await sql`update wombat.runs set scheduled_for = ${at('00:00:10').toISOString()} where id = ${requeue}`.execute(db);
  await sql`update wombat.runs set scheduled_for = ${at('00:00:40').toISOString()} where requeued_as = ${requeue}`.execute(db);
  t.same(await releaseWaitingRuns(db, boss, clock('00:05:00')), [], 'the latest run of the day decides (not the completed one before it): failed but requeued, and the requeue is running: keeps waiting');
  await sql`update wombat.runs set state = 'failed' where id = ${requeue}`.execute(db);
  const [r] = await releaseWaitingRuns(db, boss, clock('00:05:00'));
  t.match(r, { id, state: 'skipped', code: 'dependency_failed', prerequisite: a.name });
  const run = await runOf(id);
  t.equal(run.state, 'skipped');
  t.match(run.reason, new RegExp(`^dependency_failed: ${b.name} waits for ${a.name}, which ended failed for this period \\(run ${requeue}\\)$`));
  t.ok(run.finished_at);
  t.equal(await boss.getJobById('canary', id), null, 'no job was ever sent');

  const alerting = createAlerting({ db, log: tdb.log, options: { ...loadConfig(alertFields, { ALERT_DAILY_REPORT_TIME: 'off', ALERT_RESOLVE_AFTER_MS: '0' }), timezone: 'UTC' } });
  await alerting.evaluate();
  const alerts = await sql<{ key: string; subject: string; message: string }>`select key, subject, message from wombat.alerts where kind = 'dependency_skipped' and state = 'open'`.execute(db);
  t.match(alerts.rows, [{ key: `dependency_skipped:${b.id}`, subject: `schedule ${b.name} skipped: its prerequisite ${a.name} failed`, message: /wombat trigger post-\d+ --force/ }]);
  // trigger --force runs it anyway (no run is waiting any more: a manual run), and its completion resolves the alert.
  const manual = (await triggerSchedule(db, boss, b.id, { force: true }))!;
  t.not(manual, id);
  await sql`update wombat.runs set state = 'completed', scheduled_for = now() where id = ${manual}`.execute(db);
  await alerting.evaluate();
  const still = await sql`select 1 from wombat.alerts where kind = 'dependency_skipped' and state = 'open'`.execute(db);
  t.equal(still.rows.length, 0, 'resolved once a later run of the schedule completed');
});

t.test('past the window without a completed prerequisite: dependency_timeout; completion is judged first', async (t) => {
  const { a, b } = await pair();
  const id = await waitingRun(b);
  await prerequisiteRun(a, 'queued');
  t.same(await releaseWaitingRuns(db, boss, clock('00:11:59')), [], 'within wait_for (10 min): keeps waiting');
  const [r] = await releaseWaitingRuns(db, boss, clock('00:12:00'));
  t.match(r, { id, state: 'skipped', code: 'dependency_timeout', prerequisite: a.name });
  t.match((await runOf(id)).reason, new RegExp(`^dependency_timeout: ${b.name} waited 600s \\(wait_for\\) for ${a.name}`));

  const late = await pair();
  const lateId = await waitingRun(late.b);
  await prerequisiteRun(late.a, 'completed');
  t.match(await releaseWaitingRuns(db, boss, clock('05:00:00')), [{ id: lateId, state: 'queued' }], 'a prerequisite that completed while no engine ran releases it however late');
});

t.test('skipped and missed prerequisite runs are passed over; a run of yesterday does not count', async (t) => {
  const { a, b } = await pair();
  const id = await waitingRun(b);
  await prerequisiteRun(a, 'skipped');
  await sql`insert into wombat.runs (id, job, trigger, schedule_id, scheduled_for, state, params)
            values (${randomUUID()}, 'canary', 'manual', ${a.id}, ${new Date(at('00:00:00').getTime() - 3_600_000).toISOString()}, 'completed', '{}')`.execute(db);
  t.same(await releaseWaitingRuns(db, boss, clock('00:05:00')), []);
  await prerequisiteRun(a, 'completed', { time: '00:04:00', trigger: 'manual' });
  t.match(await releaseWaitingRuns(db, boss, clock('00:05:00')), [{ id, state: 'queued' }]);
});

t.test('a paused schedule\'s waiting run ends skipped; queue-one holds a released run while another runs', async (t) => {
  const paused = await pair();
  const id = await waitingRun(paused.b);
  await setScheduleStatus(db, paused.b.id, 'paused');
  t.match(await releaseWaitingRuns(db, boss, clock('00:03:00')), [{ id, state: 'skipped', reason: 'schedule paused while the run waited for its prerequisites' }]);

  const q = await pair({ overlap: 'queue-one' });
  const qid = await waitingRun(q.b);
  await sql`insert into wombat.runs (id, job, trigger, schedule_id, scheduled_for, state, params) values (${randomUUID()}, 'canary', 'manual', ${q.b.id}, now(), 'running', '{}')`.execute(db);
  await prerequisiteRun(q.a, 'completed');
  t.match(await releaseWaitingRuns(db, boss, clock('00:03:00')), [{ id: qid, state: 'held' }]);
  t.equal((await runOf(qid)).state, 'held', 'releaseHeldRuns takes it from here');
});

t.test('trigger --force releases the waiting run instead of starting a second one', async (t) => {
  const { b } = await pair();
  const id = await waitingRun(b);
  t.equal(await triggerSchedule(db, boss, b.id, { force: true }), id);
  const run = await runOf(id);
  t.equal(run.state, 'queued');
  t.equal(run.reason, FORCED_RELEASE_REASON);
  t.ok(await boss.getJobById('canary', id));
  const plain = await triggerSchedule(db, boss, b.id);
  t.not(plain, id, 'a manual trigger without --force runs now, without waiting for prerequisites');
  t.equal((await runOf(plain!)).state, 'queued');
});

t.test('a prerequisite skipped for want of its own prerequisites fails the chain at once', async (t) => {
  const { a, b } = await pair();
  const id = await waitingRun(b);
  const skipped = await prerequisiteRun(a, 'skipped');
  await sql`update wombat.runs set reason = 'dependency_timeout: pre waited 600s (wait_for) for x' where id = ${skipped}`.execute(db);
  t.match(await releaseWaitingRuns(db, boss, clock('00:03:00')), [{ id, state: 'skipped', code: 'dependency_failed', prerequisite: a.name }]);
  t.match((await runOf(id)).reason, /which ended skipped for this period/);
});

t.test('runs still waiting at the front do not hide later ones: every page is looked at', async (t) => {
  const blocked = await pair();
  for (let i = 0; i < 5; i++) {
    await recordOccurrences(db, [{ id: randomUUID(), schedule_id: blocked.b.id, job: 'canary', scheduled_for: new Date(at('00:02:00').getTime() - (i + 1) * 1000).toISOString(), state: 'waiting', reason: 'x', params: {} }]);
  }
  const ready = await pair();
  const id = await waitingRun(ready.b);
  await prerequisiteRun(ready.a, 'completed');
  // Pages of two: the five blocked runs come first (earlier scheduled_for).
  t.match(await releaseWaitingRuns(db, boss, clock('00:03:00'), 2), [{ id, state: 'queued' }]);
  await sql`update wombat.runs set state = 'cancelled' where schedule_id = ${blocked.b.id}`.execute(db);
});
