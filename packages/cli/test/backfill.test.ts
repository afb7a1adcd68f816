import t from 'tap';
import { insertSchedule, validateScheduleInput } from '@wombat/core/schedules';
import { createTestDatabase } from '@wombat/core/testing';
import { startEngine, startWorker, wombat } from './helpers.ts';

/**
 * `wombat backfill`: the plan printed by --dry-run (nothing written), the start (the parent's
 * id), `wombat cancel <id>` of the whole backfill, and errors that say what to fix.
 */
const tdb = await createTestDatabase(t);
const env = { DATABASE_URL: tdb.url, TZ: 'UTC' };
const DAY_MS = 86_400_000;
const today = Math.floor(Date.now() / DAY_MS) * DAY_MS;
const date = (i: number) => new Date(today + i * DAY_MS).toISOString().slice(0, 10);
const def = validateScheduleInput({ name: 'nightly', job: 'canary', cron: '0 0 * * *', timezone: 'UTC', params: { sleep_ms: 1 } });
if (!def.ok) throw new Error(def.problems.join('; '));
await insertSchedule(tdb.db, def.value);

const count = async () => (await tdb.sql<{ runs: number; jobs: number }[]>`select (select count(*)::int from wombat.runs) as runs, (select count(*)::int from pgboss.job) as jobs`)[0]!;

t.test('--dry-run prints every occurrence with its params and publishes nothing', async (t) => {
  const before = await count();
  const r = await wombat(['backfill', 'nightly', '--from', date(-4), '--to', date(-1), '--dry-run'], env);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /SCHEDULE\s+SCHEDULED FOR\s+EXISTING\s+ACTION\s+PARAMS/);
  t.match(r.stdout, new RegExp(`${date(-4)}T00:00:00.000Z\\s+none\\s+run\\s+\\{"sleep_ms":1,"period":\\{"from":"${date(-5)}T00:00:00.000Z","to":"${date(-4)}T00:00:00.000Z"\\}\\}`));
  t.match(r.stdout, /3 occurrence\(s\): 3 to run, 0 skipped; dry run, nothing published/);
  const json = await wombat(['backfill', 'nightly', '--from', date(-4), '--to', date(-1), '--dry-run', '--json'], env);
  t.match(json.json, { dry_run: true, run_id: null, run: 3, skip: 0 });
  t.equal(json.json.occurrences.length, 3);
  t.same(await count(), before, 'no run, no job');
});

t.test('refuses a range past --max, a bad time and a bad number with what to fix', async (t) => {
  const before = await count();
  const max = await wombat(['backfill', 'nightly', '--from', date(-40), '--to', date(-1), '--max', '30'], env);
  t.equal(max.code, 1);
  t.match(max.stderr, /more than 30 occurrences of the schedule: narrow the range or raise max \(--max\)/);
  const from = await wombat(['backfill', 'nightly', '--from', 'last week', '--to', date(-1)], env);
  t.equal(from.code, 2);
  t.match(from.stderr, /from must be an ISO time \(2026-12-01T00:00:00Z\) or a date \(2026-12-01\), not "last week"/);
  const n = await wombat(['backfill', 'nightly', '--from', date(-4), '--to', date(-1), '--concurrency', 'two'], env);
  t.equal(n.code, 2);
  t.match(n.stderr, /--concurrency must be a whole number, not "two"/);
  const none = await wombat(['backfill', 'no-such', '--from', date(-4), '--to', date(-1)], env);
  t.match(none.stderr, /no schedule with name "no-such"/);
  t.same(await count(), before, 'nothing was written');
});

t.test('a backfill starts with its parent\'s id; wombat cancel <id> cancels it and its children', async (t) => {
  const r = await wombat(['backfill', 'nightly', '--from', date(-4), '--to', date(-1), '--concurrency', '2'], env);
  t.equal(r.code, 0, r.stderr);
  const id = r.stdout.trim();
  t.match(id, /^[0-9a-f-]{36}$/);
  const kids = async () => (await tdb.sql<{ state: string }[]>`select state from wombat.runs where parent_id = ${id} order by scheduled_for`).map((k) => k.state);
  t.same(await kids(), ['queued', 'queued', 'held']);
  const task = await wombat(['task', id, '--json'], env);
  t.match(task.json, { trigger: 'backfill', state: 'running', children: { total: 3 } });
  const cancel = await wombat(['cancel', id], env);
  t.equal(cancel.code, 0, cancel.stderr);
  t.equal(cancel.stdout.trim(), `run ${id} cancelled (was running)`);
  t.same(await kids(), ['cancelled', 'cancelled', 'cancelled']);
  const again = await wombat(['cancel', id], env);
  t.equal(again.code, 1);
  t.match(again.stderr, /already ended as cancelled/);
  const resume = await wombat(['backfill-resume', id], env);
  t.equal(resume.code, 1);
  t.match(resume.stderr, /is cancelled, not paused/);
  t.match((await wombat(['cancel', id, '--job', 'canary'], env)).stderr, /give a run id or --job, not both/);
});

t.test('--wait follows the backfill through a real engine and worker to its end', async (t) => {
  await startEngine(t, { ...env, ENGINE_HELD_RUN_CHECK_MS: '100' });
  await startWorker(t, { ...env, WORKER_QUEUES: 'canary' });
  const r = await wombat(['backfill', 'nightly', '--from', date(-8), '--to', date(-5), '--concurrency', '2', '--wait', '--json'], env);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /backfill [0-9a-f-]{36}: 3 occurrence\(s\): 3 to run, 0 skipped/);
  t.match(r.json, { trigger: 'backfill', state: 'completed', progress: 1, children: { total: 3, by_state: { completed: 3 } } });
  const failing = await wombat(['backfill', 'nightly', '--from', date(-8), '--to', date(-5), '--wait'], env);
  t.equal(failing.code, 1, 'nothing left to run is a failure that says so');
  t.match(failing.stderr, /all 3 occurrences in the range completed already: rerun them with --rerun/);
});
