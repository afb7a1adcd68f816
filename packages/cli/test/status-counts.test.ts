import t from 'tap';
import { sql } from 'kysely';
import { foldRunCounts } from '@wombat/core/runs';
import { createTestDatabase } from '@wombat/core/testing';
import { deadLetterCount, queueStats } from '../src/queries.ts';

/**
 * `wombat status` counts from the run roll-ups: they equal count(*) over wombat.runs, before and
 * after the engine's fold, for unfinished runs, outcomes in the window and dead letters.
 */
const tdb = await createTestDatabase(t);
const { db } = tdb;
await sql`
  insert into wombat.runs (id, job, trigger, state, created_at, started_at, finished_at, requeued_as)
  select gen_random_uuid(), (array['canary', 'backtest', 'fetch-candles'])[1 + i % 3], 'task',
    (array['waiting', 'held', 'queued', 'running', 'retrying', 'completed', 'failed', 'completed', 'failed', 'cancelled'])[1 + i % 10],
    now() - make_interval(mins => i), now() - make_interval(mins => i),
    case when i % 10 >= 5 then now() - make_interval(mins => i) + interval '1 second' end,
    case when i % 20 = 8 then gen_random_uuid() end
  from generate_series(1, 300) i`.execute(db);

async function truth(windowMinutes: number) {
  const { rows } = await sql<{ job: string; waiting: number; running: number; completed: number; failed: number }>`
    select job,
      count(*) filter (where state in ('waiting', 'held', 'queued', 'retrying'))::int as waiting,
      count(*) filter (where state = 'running')::int as running,
      count(*) filter (where state = 'completed' and finished_at >= date_trunc('minute', now() - make_interval(mins => ${windowMinutes})))::int as completed,
      count(*) filter (where state = 'failed' and finished_at >= date_trunc('minute', now() - make_interval(mins => ${windowMinutes})))::int as failed
    from wombat.runs group by job`.execute(db);
  return new Map(rows.map((r) => [r.job, r]));
}

for (const folded of [false, true]) {
  t.test(`status counts equal count(*) over wombat.runs (${folded ? 'after' : 'before'} a fold)`, async (t) => {
    if (folded) await foldRunCounts(db);
    const want = await truth(60);
    const stats = await queueStats(db, 60);
    for (const job of ['canary', 'backtest', 'fetch-candles']) {
      const s = stats.find((q) => q.job === job)!;
      const w = want.get(job)!;
      t.match(s, { waiting: w.waiting, running: w.running, completed: w.completed, failed: w.failed }, job);
      t.ok(w.waiting > 0 && w.running > 0 && w.completed > 0 && w.failed > 0, `${job}: every figure counted`);
    }
    const { rows: [dead] } = await sql<{ n: number }>`select count(*)::int as n from wombat.runs where state = 'failed' and requeued_as is null`.execute(db);
    t.equal(await deadLetterCount(db), dead!.n);
    t.ok(dead!.n > 0);
  });
}
