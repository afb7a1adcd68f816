import t from 'tap';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { startBoss } from '@wombat/core/platform';
import { backfillSchedule, type Run } from '@wombat/core/runs';
import { insertSchedule, validateScheduleInput } from '@wombat/core/schedules';
import { createTestDatabase } from '@wombat/core/testing';
import { readExecutionLog } from '../src/index.ts';
import { startTestEngine, startTestWorker, waitForRun } from './fixtures/harness.ts';

/**
 * Dependencies inside a backfill against two real engines, a worker and PostgreSQL: a
 * backfill of B (after A) over three days runs A's occurrences too, and each day's B
 * child only after that day's A child completed; the day whose A child fails for good
 * skips its B child (dependency_failed) while the other days run; each child runs once.
 */
const DAY_MS = 86_400_000;
const today = Math.floor(Date.now() / DAY_MS) * DAY_MS;
const day = (i: number) => new Date(today + i * DAY_MS).toISOString();

t.test('each day\'s B child starts after that day\'s A child completed, a failed A day skips its B, two engines release each once', async (t) => {
  const tdb = await createTestDatabase(t);
  const dir = await mkdtemp(path.join(tmpdir(), 'wombat-backfill-deps-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const log = path.join(dir, 'executions.jsonl');
  const boss = await startBoss({ url: tdb.url, role: 'producer', log: tdb.log, poolSize: 2 });
  t.teardown(() => boss.stop({ graceful: false, close: true }));
  const schedule = async (input: object) => {
    const r = validateScheduleInput({ job: 'canary', cron: '0 0 * * *', timezone: 'UTC', max_retries: 0, ...input });
    if (!r.ok) throw new Error(r.problems.join('; '));
    return insertSchedule(tdb.db, r.value);
  };
  const a = await schedule({ name: 'day-symbols', params: { sleep_ms: 250 } });
  const b = await schedule({ name: 'day-prices', after: ['day-symbols'], params: { sleep_ms: 50 } });

  const runsBefore = await sql<{ n: number }>`select count(*)::int as n from wombat.runs`.execute(tdb.db);
  const dry = await backfillSchedule(tdb.db, boss, b, { from: day(-3), to: day(0), concurrency: 2, dryRun: true });
  t.same(dry.plan.map((p) => `${p.schedule} ${p.scheduled_for}`).sort(), [-3, -2, -1].flatMap((i) => [`day-prices ${day(i)}`, `day-symbols ${day(i)}`]).sort(), 'the dry run lists both schedules\' occurrences');
  t.equal((await sql<{ n: number }>`select count(*)::int as n from wombat.runs`.execute(tdb.db)).rows[0]!.n, runsBefore.rows[0]!.n, 'and records nothing');

  const parentId = (await backfillSchedule(tdb.db, boss, b, { from: day(-3), to: day(0), concurrency: 2 })).runId!;
  // Before any engine or worker runs: A's child of day -2 fails for good (the first two A children are queued already).
  const aKids = await tdb.db.selectFrom('wombat.runs').selectAll().where('parent_id', '=', parentId).where('schedule_id', '=', a.id).orderBy('scheduled_for').execute();
  t.same(aKids.map((k) => k.state), ['queued', 'queued', 'held'], 'the two slots went to A\'s children, B\'s wait without one');
  const failing = aKids[2]!;
  await sql`update wombat.runs set params = params || '{"fail": "permanent"}'::jsonb where id = ${failing.id}`.execute(tdb.db);

  await startTestWorker(t, tdb, { queues: ['canary'], batchSize: 10, executionLog: log });
  await Promise.all([startTestEngine(t, tdb, 'engine-0'), startTestEngine(t, tdb, 'engine-1')]);
  const parent = await waitForRun(tdb, parentId, (r: Run) => ['completed', 'failed', 'cancelled'].includes(r.state), 30_000);

  const kids = await tdb.db.selectFrom('wombat.runs').selectAll().where('parent_id', '=', parentId).orderBy('scheduled_for').execute();
  t.equal(kids.length, 6, 'one parent with a child per occurrence of both schedules');
  const child = (s: number, i: number) => kids.find((k) => Number(k.schedule_id) === s && new Date(k.scheduled_for!).toISOString() === day(i))!;
  t.same([-3, -2, -1].map((i) => child(a.id, i).state), ['completed', 'completed', 'failed']);
  t.same([-3, -2, -1].map((i) => child(b.id, i).state), ['completed', 'completed', 'skipped']);
  t.match(child(b.id, -1).reason, new RegExp(`^dependency_failed: day-prices waits for day-symbols, which ended failed for ${day(-1).slice(0, 10)} \\(run ${failing.id}\\)`));
  const events = readExecutionLog(await readFile(log, 'utf8'));
  const at = (ev: 'start' | 'end', id: string) => events.findIndex((e) => e.ev === ev && e.run === id);
  for (const i of [-3, -2]) {
    const [pa, pb] = [child(a.id, i), child(b.id, i)];
    t.ok(at('start', pb.id) > at('end', pa.id) && at('end', pa.id) >= 0, `day ${i}: B's child started after A's child ended (execution log)`);
    t.ok(new Date(pb.started_at!).getTime() >= new Date(pa.finished_at!).getTime(), `day ${i}: B's started_at is not before A's finished_at`);
    t.same((pb.params as { period: unknown }).period, { from: day(i - 1), to: day(i) }, `day ${i}: B's child carries its own period`);
    t.same((pa.params as { period: unknown }).period, { from: day(i - 1), to: day(i) }, `day ${i}: and A's child its own`);
  }
  t.equal(at('start', child(b.id, -1).id), -1, 'the skipped B child never ran');
  const starts = events.filter((e) => e.ev === 'start' && kids.some((k) => k.id === e.run));
  t.equal(starts.length, 5, 'five children ran');
  t.equal(new Set(starts.map((e) => e.run)).size, 5, 'each once, with two engines releasing');
  t.match(parent, { state: 'failed', progress: 1, progress_message: '6/6 done, 1 failed, 1 skipped (a prerequisite failed), 0 active, 0 waiting' });
});
