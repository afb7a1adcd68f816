import t from 'tap';
import { startBoss } from '@wombat/core/platform';
import { publishRun } from '@wombat/core/runs';
import { createTestDatabase } from '@wombat/core/testing';
import { wombat, wombatProcess } from './helpers.ts';

/**
 * `wombat cancel`: empties a queue in one step. 50 canary tasks wait with no worker to take
 * them; the command cancels them (the older ones first, with --older-than), the run history
 * and pg-boss agree, and it says how many.
 */
const tdb = await createTestDatabase(t);
const env = { DATABASE_URL: tdb.url, TZ: 'UTC' };
const boss = await startBoss({ url: tdb.url, role: 'producer', log: tdb.log, poolSize: 2 });
t.teardown(() => boss.stop({ graceful: false, close: true }));

async function states(ids: string[]) {
  const runs = await tdb.sql<{ state: string; n: number }[]>`select state, count(*)::int as n from wombat.runs where id = any(${ids}::uuid[]) group by state`;
  const jobs = await tdb.sql<{ state: string; n: number }[]>`select state::text, count(*)::int as n from pgboss.job where id = any(${ids}::uuid[]) group by state`;
  return { runs: Object.fromEntries(runs.map((r) => [r.state, r.n])), jobs: Object.fromEntries(jobs.map((r) => [r.state, r.n])) };
}

t.test('cancels the queued runs of a job type and their pg-boss jobs, older ones first with --older-than', async (t) => {
  const ids: string[] = [];
  for (let i = 0; i < 50; i++) ids.push(await publishRun(tdb.db, boss, { job: 'canary', params: {}, trigger: 'task' }));
  const other = await publishRun(tdb.db, boss, { job: 'fetch-candles', params: { exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1D' }, trigger: 'task' });
  const old = ids.slice(0, 20);
  // Test set-up: these were queued two hours ago.
  await tdb.sql`update wombat.runs set created_at = now() - interval '2 hours' where id = any(${old}::uuid[])`;

  const first = await wombatProcess(['cancel', '--job', 'canary', '--older-than', '1h'], env);
  t.equal(first.code, 0, first.stderr);
  t.equal(first.stdout.trim(), '20 run(s) of canary cancelled (queued, older than 1h)');
  t.same(await states(old), { runs: { cancelled: 20 }, jobs: { cancelled: 20 } }, 'the older runs and their jobs are cancelled');
  t.same(await states(ids.slice(20)), { runs: { queued: 30 }, jobs: { created: 30 } }, 'the newer ones wait on');

  const rest = await wombat(['cancel', '--job', 'canary', '--json'], env);
  t.equal(rest.code, 0, rest.stderr);
  t.same(rest.json, { cancelled: 30, job: 'canary', states: ['queued'], older_than: null });
  t.same(await states(ids), { runs: { cancelled: 50 }, jobs: { cancelled: 50 } }, 'run history and pg-boss agree');
  const finished = await tdb.sql<{ n: number }[]>`select count(*)::int as n from wombat.runs where id = any(${ids}::uuid[]) and finished_at is not null`;
  t.equal(finished[0]!.n, 50, 'each cancelled run has its end time');
  t.same(await states([other]), { runs: { queued: 1 }, jobs: { created: 1 } }, 'another job type is untouched');

  const again = await wombat(['cancel', '--job', 'canary'], env);
  t.equal(again.stdout.trim(), '0 run(s) of canary cancelled (queued)');
  const alias = await wombat(['cancel', '--job', 'fetch_candles', '--state', 'queued,retrying', '--json'], env);
  t.match(alias.json, { cancelled: 1, job: 'fetch-candles', states: ['queued', 'retrying'] }, 'job names as the older setup wrote them');
});

t.test('refuses unknown job types, states and ages with a message that says what to give', async (t) => {
  const job = await wombat(['cancel', '--job', 'mine-bitcoin'], env);
  t.equal(job.code, 2);
  t.match(job.stderr, /"mine-bitcoin" is not a job type; give one of .*canary/);
  const state = await wombat(['cancel', '--job', 'canary', '--state', 'completed'], env);
  t.equal(state.code, 2);
  t.match(state.stderr, /state "completed" cannot be cancelled; give one of waiting, held, queued, running, retrying/);
  const age = await wombat(['cancel', '--job', 'canary', '--older-than', 'yesterday'], env);
  t.equal(age.code, 2);
  t.match(age.stderr, /older_than must be an age like 90s, 30m, 1h, 2d or 1w, not "yesterday"/);
  const missing = await wombat(['cancel'], env);
  t.equal(missing.code, 2, 'without --job');
});
