import t, { type Test } from 'tap';
import { sql } from 'kysely';
import { startTestApi } from './helpers.ts';

/**
 * Keyset pages of /api/runs and /api/dead-letters: following next_starting_after from the
 * first page visits every matching run once, in the list's order, ties of the sort key
 * included; a cursor that names no run, or an offset beside it, is refused.
 */
const api = await startTestApi(t);
const { db } = api.database;

// 137 runs over 4 jobs; every 7th group of 5 shares one created_at (ties broken by id), and a
// third of them failed (dead letters, also with tied finished_at).
await sql`
  insert into wombat.runs (id, job, trigger, state, created_at, started_at, finished_at)
  select gen_random_uuid(), (array['canary', 'backtest', 'fetch-candles', 'collect-prices'])[1 + i % 4], 'task',
    case when i % 3 = 0 then 'failed' else 'completed' end,
    now() - make_interval(secs => case when i % 7 = 0 then (i / 5) * 5 else i end),
    now() - make_interval(secs => i) - interval '1 second',
    now() - make_interval(secs => case when i % 7 = 0 then (i / 5) * 5 else i end) + interval '1 second'
  from generate_series(1, 137) i`.execute(db);

type Listed = { id: string };
type Page = { total: number; has_more: boolean; next_starting_after: string | null } & Record<string, unknown>;

async function walk(t: Test, path: string, key: string, limit: number): Promise<string[]> {
  const seen: string[] = [];
  let after: string | null = null;
  for (let pages = 0; pages < 500; pages++) {
    const sep = path.includes('?') ? '&' : '?';
    const res = await api.call('GET', `${path}${sep}limit=${limit}${after ? `&starting_after=${after}` : ''}`);
    t.equal(res.status, 200, `page ${pages + 1} answers 200`);
    const body = res.body as Page;
    const rows = body[key] as Listed[];
    seen.push(...rows.map((r) => r.id));
    t.equal(body.has_more, body.next_starting_after !== null, 'has_more agrees with next_starting_after');
    if (!body.has_more) return seen;
    t.equal(rows.length, limit, 'a page before the last is full');
    after = body.next_starting_after;
  }
  throw new Error('paging did not end');
}

t.test('pages of /api/runs visit every run once, newest first, ties included', async (t) => {
  const { rows } = await sql<{ id: string }>`select id from wombat.runs order by created_at desc, id desc`.execute(db);
  t.same(await walk(t, '/api/runs', 'runs', 10), rows.map((r) => r.id), 'every run, in order, once');
  t.same(await walk(t, '/api/runs', 'runs', 500), rows.map((r) => r.id), 'one page holds them all');
});

t.test('pages of a filtered list follow the filter', async (t) => {
  const { rows } = await sql<{ id: string }>`select id from wombat.runs where job = 'canary' order by created_at desc, id desc`.execute(db);
  t.same(await walk(t, '/api/runs?job=canary', 'runs', 7), rows.map((r) => r.id));
  const { rows: failed } = await sql<{ id: string }>`select id from wombat.runs where state = 'failed' order by created_at desc, id desc`.execute(db);
  t.same(await walk(t, '/api/runs?state=failed', 'runs', 6), failed.map((r) => r.id));
});

t.test('pages of /api/dead-letters follow finished_at, ties included', async (t) => {
  const { rows } = await sql<{ id: string }>`select id from wombat.runs where state = 'failed' and requeued_as is null order by finished_at desc, id desc`.execute(db);
  t.ok(rows.length > 20, 'enough dead letters for several pages');
  t.same(await walk(t, '/api/dead-letters', 'dead_letters', 4), rows.map((r) => r.id));
});

t.test('the total counts every match, whatever the page', async (t) => {
  const first = await api.call('GET', '/api/runs?limit=5');
  const next = await api.call('GET', `/api/runs?limit=5&starting_after=${(first.body as Page).next_starting_after}`);
  t.equal((next.body as Page).total, 137);
  t.equal((first.body as Page).total, 137);
});

t.test('a cursor naming no run, a malformed one, or one beside an offset is refused with what to do', async (t) => {
  const gone = await api.call('GET', '/api/runs?starting_after=00000000-0000-4000-8000-000000000000');
  t.equal(gone.status, 400);
  t.equal(gone.body.error.code, 'invalid_cursor');
  t.match(gone.body.error.message, /no longer exists; list again from the first page/);
  const bad = await api.call('GET', '/api/runs?starting_after=x%27%20or%201=1');
  t.equal(bad.status, 400);
  t.match(bad.body.error.message, /starting_after/);
  const { rows } = await sql<{ id: string }>`select id from wombat.runs limit 1`.execute(db);
  const both = await api.call('GET', `/api/runs?offset=10&starting_after=${rows[0]!.id}`);
  t.equal(both.status, 400);
  t.match(both.body.error.message, /either offset or starting_after/);
  const queued = await sql<{ id: string }>`
    insert into wombat.runs (id, job, trigger, state) values (gen_random_uuid(), 'canary', 'task', 'held') returning id`.execute(db);
  const unfinished = await api.call('GET', `/api/dead-letters?starting_after=${queued.rows[0]!.id}`);
  t.equal(unfinished.status, 400);
  t.match(unfinished.body.error.message, /has not finished/);
});
