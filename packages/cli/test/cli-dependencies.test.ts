import t from 'tap';
import { randomUUID } from 'node:crypto';
import { createTestDatabase } from '@wombat/core/testing';
import { wombat } from './helpers.ts';

/** Dependencies from the command line: --depends-on and --wait-for, the database's refusals, trigger --force. */
t.setTimeout(300_000);
const tdb = await createTestDatabase(t);
const env = { DATABASE_URL: tdb.url, TZ: 'UTC' };

t.test('schedules: --depends-on and --wait-for, with cycles, unknown names and deleting a prerequisite refused', async (t) => {
  const a = await wombat(['schedules', 'create', '--name', 'cli-symbols', '--job', 'canary', '--times', '00:00', '--json'], env);
  t.equal(a.code, 0, a.stderr);
  const b = await wombat(['schedules', 'create', '--name', 'cli-prices', '--job', 'canary', '--times', '00:02', '--depends-on', 'cli-symbols', '--wait-for', '90m', '--json'], env);
  t.equal(b.code, 0, b.stderr);
  t.match(b.json, { after: ['cli-symbols'], wait_for: 5400, wait_for_seconds: 5400 });
  const shown = await wombat(['schedules', 'show', 'cli-prices'], env);
  t.match(shown.stdout, /waits for:\s+cli-symbols \(at most 5400s\)/);

  const unknown = await wombat(['schedules', 'create', '--name', 'cli-x', '--job', 'canary', '--every', '1h', '--depends-on', 'nope'], env);
  t.equal(unknown.code, 2, 'invalid input exits 2');
  t.match(unknown.stderr, /after names 'nope' which is not a schedule/);
  const badWait = await wombat(['schedules', 'create', '--name', 'cli-x', '--job', 'canary', '--every', '1h', '--wait-for', 'later'], env);
  t.equal(badWait.code, 2);
  t.match(badWait.stderr, /wait_for "later" must be seconds/);
  const cycle = await wombat(['schedules', 'edit', 'cli-symbols', '--depends-on', 'cli-prices'], env);
  t.equal(cycle.code, 2);
  t.match(cycle.stderr, /after would make a cycle: 'cli-symbols' -> 'cli-prices' -> 'cli-symbols'/);
  const deleted = await wombat(['schedules', 'delete', 'cli-symbols'], env);
  t.equal(deleted.code, 1);
  t.match(deleted.stderr, /'cli-symbols' is a prerequisite of 'cli-prices' \(after\)/);
  const none = await wombat(['schedules', 'edit', 'cli-prices', '--depends-on', '', '--json'], env);
  t.same(none.json.after, [], 'an empty list removes the dependency');
  t.equal((await wombat(['schedules', 'delete', 'cli-symbols'], env)).code, 0, 'then the prerequisite can go');
});

t.test('trigger --force releases the run waiting for its prerequisites; a plain trigger runs now', async (t) => {
  await wombat(['schedules', 'create', '--name', 'cli-pre', '--job', 'canary', '--every', '1h'], env);
  const dep = await wombat(['schedules', 'create', '--name', 'cli-dep', '--job', 'canary', '--every', '1h', '--depends-on', 'cli-pre', '--json'], env);
  const waiting = randomUUID();
  await tdb.sql`insert into wombat.runs (id, job, trigger, schedule_id, scheduled_for, state, reason, params)
                values (${waiting}, 'canary', 'schedule', ${dep.json.id}, now(), 'waiting', 'waits for cli-pre (after)', '{}')`;
  const forced = await wombat(['trigger', 'cli-dep', '--force'], env);
  t.equal(forced.code, 0, forced.stderr);
  t.equal(forced.stdout.trim(), waiting, 'the waiting run itself');
  const [row] = await tdb.sql<{ state: string; reason: string }[]>`select state, reason from wombat.runs where id = ${waiting}`;
  t.match(row, { state: 'queued', reason: /released by trigger --force/ });
  const plain = await wombat(['trigger', 'cli-dep', '--json'], env);
  t.equal(plain.code, 0, plain.stderr);
  t.not(plain.json.run_id, waiting, 'a new manual run, without waiting');
  const [manual] = await tdb.sql<{ state: string; trigger: string }[]>`select state, trigger from wombat.runs where id = ${plain.json.run_id}`;
  t.match(manual, { state: 'queued', trigger: 'manual' });
});
