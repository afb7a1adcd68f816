import t from 'tap';
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { applyAttemptUpdates, cancelRun, foldRunCounts, publishRuns, requeueRun } from '@wombat/core/runs';
import { startTestApi } from './helpers.ts';

/**
 * The overview and /metrics read run counts from the run roll-ups: here they are
 * compared with count(*) over wombat.runs after runs went through the lifecycle,
 * before and after the engine's fold.
 */
const api = await startTestApi(t);
const { db } = api.database;
const worker = randomUUID();
const now = () => new Date().toISOString();

const sample = (text: string, name: string) => {
  const m = new RegExp(`^${name.replace(/[{}"+]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
};

async function count(where: ReturnType<typeof sql>): Promise<Record<string, number>> {
  const { rows } = await sql<{ key: string; n: number }>`select job || '/' || state as key, count(*)::int as n from wombat.runs where ${where} group by 1`.execute(db);
  return Object.fromEntries(rows.map((r) => [r.key, r.n]));
}

// Runs of several kinds, through the lifecycle: queued, running, completed, failed for good,
// failed -> retrying -> completed, cancelled, requeued; and older history written directly.
await publishRuns(db, api.boss, Array.from({ length: 24 }, () => ({ job: 'canary' as const, params: {}, trigger: 'task' as const, retryLimit: 0, retryDelaySeconds: 0 })));
const jobs = await api.boss.fetch('canary', { batchSize: 20 });
const claimed = jobs.map((j) => j.id);
await applyAttemptUpdates(api.database.sql, claimed.map((id) => ({ id, attempts: 1, state: 'running' as const, workerId: worker, attemptStartedAt: new Date(Date.now() - 3000).toISOString() })));
await applyAttemptUpdates(api.database.sql, claimed.slice(2, 10).map((id) => ({ id, attempts: 1, state: 'completed' as const, workerId: worker, result: {}, finishedAt: now() })));
await applyAttemptUpdates(api.database.sql, claimed.slice(10, 14).map((id) => ({ id, attempts: 1, state: 'failed' as const, workerId: worker, error: { message: 'x' }, finishedAt: now() })));
const retried = claimed[0]!;
await sql`update pgboss.job set retry_limit = 1 where id = ${retried}`.execute(db);
await api.boss.fail('canary', retried, { message: 'again' });
await applyAttemptUpdates(api.database.sql, [{ id: retried, attempts: 1, workerId: worker, state: 'retrying' }]);
const again = await api.boss.fetch('canary', { batchSize: 10 });
if (!again.some((j) => j.id === retried)) throw new Error('expected pg-boss to run the retry');
await applyAttemptUpdates(api.database.sql, [{ id: retried, attempts: 2, workerId: worker, state: 'running', attemptStartedAt: now() }]);
await applyAttemptUpdates(api.database.sql, [{ id: retried, attempts: 2, workerId: worker, state: 'completed', finishedAt: now() }]);
for (const id of claimed.slice(14, 16)) await cancelRun(db, api.boss, id);
await api.boss.fail('canary', claimed[10]!, { message: 'x' });
await requeueRun(db, api.boss, claimed[10]!, { trigger: 'manual' });
await sql`
  insert into wombat.runs (id, job, trigger, state, created_at, started_at, finished_at)
  select gen_random_uuid(), 'backtest', 'task', case when i % 3 = 0 then 'failed' else 'completed' end,
    now() - interval '26 hours', now() - make_interval(mins => i * 5) - interval '2 seconds', now() - make_interval(mins => i * 5)
  from generate_series(1, 30) i`.execute(db);

for (const folded of [false, true]) {
  if (folded) await foldRunCounts(db);
  const when = folded ? 'after a fold' : 'before a fold';

  t.test(`the overview's run counts equal count(*) over wombat.runs (${when})`, async (t) => {
    const res = await api.call('GET', '/api/overview');
    t.equal(res.status, 200);
    const o = res.body;
    const created = await count(sql`created_at >= date_trunc('minute', now() - interval '24 hours')`);
    const byState: Record<string, number> = {};
    for (const [k, n] of Object.entries(created)) byState[k.split('/')[1]!] = (byState[k.split('/')[1]!] ?? 0) + n;
    t.same(o.runs_24h, byState, 'runs_24h');
    const hourSums: Record<string, number> = {};
    for (const h of o.hours) for (const [s, n] of Object.entries(h.states as Record<string, number>)) hourSums[s] = (hourSums[s] ?? 0) + n;
    t.same(hourSums, byState, 'the hours add up to runs_24h');
    const { rows: [w] } = await sql<{ completed: number; failed: number; avg: number }>`
      select count(*) filter (where state = 'completed')::int as completed, count(*) filter (where state = 'failed')::int as failed,
        avg(extract(epoch from finished_at - started_at))::float8 as avg
      from wombat.runs where finished_at >= date_trunc('minute', now() - interval '1 hour') and state in ('completed', 'failed')`.execute(db);
    t.ok(w!.failed > 0 && w!.completed > 0, 'the window holds both outcomes');
    t.equal(o.failure_ratio.value, Math.round((w!.failed / (w!.completed + w!.failed)) * 10000) / 10000, 'failure ratio');
    t.equal(o.avg_run_seconds.value, Math.round(w!.avg * 1000) / 1000, 'average run time');
    const dead = Object.values(await count(sql`state = 'failed' and requeued_as is null`)).reduce((a, n) => a + n, 0);
    t.equal(o.dead_letters.value, dead, 'dead letters');
    const active = await count(sql`state in ('queued', 'running', 'retrying')`);
    const canary = (o.queues as { queue: string; depth: { value: number }; active: number }[]).find((q) => q.queue === 'canary')!;
    t.equal(canary.depth.value, (active['canary/queued'] ?? 0) + (active['canary/retrying'] ?? 0), 'queue depth: runs queued or retrying');
    t.equal(canary.active, active['canary/running'] ?? 0, 'active: runs running');
  });

  t.test(`/metrics' run gauges equal count(*) over wombat.runs (${when})`, async (t) => {
    const res = await api.call('GET', '/metrics');
    const text = res.body as string;
    const active = await count(sql`state in ('held', 'queued', 'running', 'retrying')`);
    for (const state of ['queued', 'running', 'retrying']) t.equal(sample(text, `wombat_runs_active{job="canary",state="${state}"}`), active[`canary/${state}`] ?? 0, `active ${state}`);
    // The queue gauges come from the same roll-ups: a queue's waiting jobs are its runs queued or retrying.
    t.equal(sample(text, 'wombat_queue_depth{queue="canary"}'), (active['canary/queued'] ?? 0) + (active['canary/retrying'] ?? 0), 'queue depth');
    t.equal(sample(text, 'wombat_queue_active_jobs{queue="canary"}'), active['canary/running'] ?? 0, 'active jobs');
    t.ok((active['canary/queued'] ?? 0) > 0 && (active['canary/running'] ?? 0) > 0, 'both are counted');
    const finished = await count(sql`finished_at >= date_trunc('minute', now() - interval '1 hour') and state in ('completed', 'failed', 'cancelled')`);
    for (const [key, n] of Object.entries(finished)) {
      const [job, state] = key.split('/');
      t.equal(sample(text, `wombat_runs_finished_window{job="${job}",state="${state}"}`), n, `finished in the window: ${key}`);
    }
    const total = await count(sql`finished_at is not null and started_at is not null and state in ('completed', 'failed', 'cancelled')`);
    for (const [key, n] of Object.entries(total)) {
      const [job, state] = key.split('/');
      t.equal(sample(text, `wombat_runs_finished_total{job="${job}",state="${state}"}`), n, `finished in all: ${key}`);
    }
    t.equal(sample(text, 'wombat_dead_letters'), Object.values(await count(sql`state = 'failed' and requeued_as is null`)).reduce((a, n) => a + n, 0));
  });
}

t.test('the run list totals equal count(*) over wombat.runs', async (t) => {
  const total = async (where: ReturnType<typeof sql>) => Number((await sql<{ n: number }>`select count(*)::int as n from wombat.runs where ${where}`.execute(db)).rows[0]!.n);
  const cases: [string, ReturnType<typeof sql>][] = [
    ['', sql`true`],
    ['&job=canary', sql`job = 'canary'`],
    ['&state=failed', sql`state = 'failed'`],
    ['&job=backtest&state=completed', sql`job = 'backtest' and state = 'completed'`],
    ['&trigger=task&state=queued', sql`trigger = 'task' and state = 'queued'`],
  ];
  for (const [query, where] of cases) {
    const res = await api.call('GET', `/api/runs?limit=5${query}`);
    t.equal(res.status, 200);
    t.equal(res.body.total, await total(where), `total${query || ' of all runs'}`);
    t.equal(res.body.runs.length, Math.min(5, res.body.total));
  }
});

t.test('the dead-letter list totals equal count(*) over wombat.runs', async (t) => {
  for (const query of ['', '&job=canary', '&job=backtest']) {
    const job = query === '' ? null : query.slice('&job='.length);
    const want = Number((await sql<{ n: number }>`select count(*)::int as n from wombat.runs where state = 'failed' and requeued_as is null and (${job}::text is null or job = ${job})`.execute(db)).rows[0]!.n);
    const res = await api.call('GET', `/api/dead-letters?limit=5${query}`);
    t.equal(res.status, 200);
    t.ok(want > 0, 'there are dead letters to count');
    t.equal(res.body.total, want, `total${query || ' of all dead letters'}`);
  }
});

t.test('the overview shows start lateness percentiles within 5% of the exact ones', async (t) => {
  await sql`insert into wombat.runs (id, job, trigger, schedule_id, state, scheduled_for, started_at)
            select gen_random_uuid(), 'canary', 'schedule', -i, 'running', now(), now() + make_interval(secs => i * 0.01)
            from generate_series(1, 200) i`.execute(db);
  const { rows: [exact] } = await sql<{ p50: number; p99: number }>`
    select percentile_cont(0.5) within group (order by extract(epoch from started_at - scheduled_for) * 1000)::float8 as p50,
           percentile_cont(0.99) within group (order by extract(epoch from started_at - scheduled_for) * 1000)::float8 as p99
    from wombat.runs where trigger = 'schedule'`.execute(db);
  const hours = (await api.call('GET', '/api/overview')).body.hours as { lateness_p50_ms: number | null; lateness_p99_ms: number | null }[];
  const shown = hours.filter((h) => h.lateness_p50_ms !== null);
  t.equal(shown.length, 1, 'one hour has scheduled runs');
  for (const [figure, want] of [[shown[0]!.lateness_p50_ms!, exact!.p50], [shown[0]!.lateness_p99_ms!, exact!.p99]] as const) {
    t.ok(figure >= want * 0.95 && figure <= want * 1.06, `${figure} ms is within 5% of ${want.toFixed(1)} ms`);
  }
});

t.test('/api/data/series names the latest finished fetch-candles run of each series, as a scan of the runs would', async (t) => {
  await sql`
    insert into wombat.runs (id, job, trigger, state, params, result, created_at, started_at, finished_at)
    select gen_random_uuid(), 'fetch-candles', 'task', case when i % 4 = 0 then 'failed' when i % 7 = 0 then 'queued' else 'completed' end,
      jsonb_build_object('exchange', case when i % 2 = 0 then 'upbit' else 'kis' end, 'symbol', 'S' || (i % 5))
        || case when i % 11 = 0 then '{}'::jsonb else jsonb_build_object('timeframe', case when i % 3 = 0 then '1D' else '1m' end) end,
      jsonb_build_object('written', i), now() - make_interval(days => case when i % 13 = 0 then 100 else 1 end),
      now() - make_interval(mins => i + 1),
      case when i % 7 = 0 then null when i % 13 = 0 then now() - interval '100 days' else now() - make_interval(mins => (i * 37) % 300) end
    from generate_series(1, 300) i`.execute(db);
  const { rows } = await sql<{ key: string; id: string }>`
    select distinct on (1) params->>'exchange' || '/' || (params->>'symbol') || '/' || (params->>'timeframe') as key, id
    from wombat.runs
    where job = 'fetch-candles' and created_at > now() - interval '90 days' and state in ('completed', 'failed')
      and params->>'exchange' is not null and params->>'symbol' is not null and params->>'timeframe' is not null
    order by 1, finished_at desc nulls last`.execute(db);
  t.ok(rows.length >= 20, 'many series');
  const res = await api.call('GET', '/api/data/series');
  t.equal(res.status, 200);
  const shown = Object.fromEntries((res.body.series as { exchange: string; symbol: string; timeframe: string; last_run_id: string | null }[])
    .filter((s) => s.last_run_id !== null).map((s) => [`${s.exchange}/${s.symbol}/${s.timeframe}`, s.last_run_id]));
  t.same(shown, Object.fromEntries(rows.map((r) => [r.key, r.id])));
});
