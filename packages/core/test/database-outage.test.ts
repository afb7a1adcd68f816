import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { createDatabase, DatabaseTimeoutError, isDatabaseUnavailable } from '@wombat/core/platform';
import { startPrivatePostgres } from '@wombat/core/testing';

/**
 * The database layer against a PostgreSQL this file stops and starts: every call
 * settles (no hang, no crash) while the server goes away mid-transaction, and the
 * same pool works again once it is back.
 */
const pg = await startPrivatePostgres(t);

// A crash inside the driver (postgres.js writing on a closed socket) would surface here.
const uncaught: unknown[] = [];
const onUncaught = (err: unknown) => uncaught.push(err);
process.on('uncaughtException', onUncaught);
process.on('unhandledRejection', onUncaught);
t.teardown(() => {
  process.off('uncaughtException', onUncaught);
  process.off('unhandledRejection', onUncaught);
});

const database = createDatabase({ url: pg.url, poolSize: 2, connectTimeoutMs: 2000, statementTimeoutMs: 5000, transactionTimeoutMs: 10000 });
t.teardown(() => database.close());
const { db } = database;
await sql`create table if not exists outage_probe (id serial primary key, note text not null)`.execute(db);

/** Settles within `ms` or reports a hang (the assertion then fails instead of the test timing out). */
async function settles<T>(p: Promise<T>, ms = 15_000): Promise<{ ok: true; value: T } | { ok: false; err: unknown } | 'hung'> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<'hung'>((r) => (timer = setTimeout(() => r('hung'), ms)));
  const outcome = await Promise.race([p.then((value) => ({ ok: true as const, value }), (err: unknown) => ({ ok: false as const, err })), hung]);
  clearTimeout(timer);
  return outcome;
}

async function waitUntilServing(): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    const r = await settles(sql`select 1 as one`.execute(db), 5_000);
    if (r !== 'hung' && r.ok) return true;
    await sleep(100);
  }
  return false;
}

t.test('stopping the database mid-transaction fails the transaction; nothing hangs or crashes; the pool recovers', async (t) => {
  const notes = ['before-stop', 'after-stop'];
  const tx = db.transaction().execute(async (trx) => {
    await sql`insert into outage_probe (note) values (${notes[0]})`.execute(trx);
    await pg.stop();
    // The connection is gone: this statement must fail, not hang or crash the process.
    await sql`insert into outage_probe (note) values (${notes[1]})`.execute(trx);
  });
  const outcome = await settles(tx);
  t.not(outcome, 'hung', 'the transaction settles');
  t.equal(outcome !== 'hung' && outcome.ok, false, 'the transaction fails');
  if (outcome !== 'hung' && !outcome.ok) t.ok(isDatabaseUnavailable(outcome.err), `the failure says the database is unavailable (${(outcome.err as Error).message})`);

  // While it is down, statements and transactions fail fast instead of queueing forever.
  const down = await Promise.all([
    settles(sql`select 1`.execute(db)),
    settles(db.transaction().execute((trx) => sql`select 1`.execute(trx))),
    settles(db.selectFrom('outage_probe' as never).selectAll().execute()),
  ]);
  for (const r of down) {
    t.not(r, 'hung', 'a call during the outage settles');
    t.ok(r !== 'hung' && !r.ok && isDatabaseUnavailable(r.err), 'and fails as unavailable');
  }

  await pg.start();
  t.ok(await waitUntilServing(), 'the same pool serves again after the restart');
  const rows = await sql<{ note: string }>`select note from outage_probe order by id`.execute(db);
  t.same(rows.rows.map((r) => r.note), [], 'the interrupted transaction left nothing behind');
  t.same(uncaught, [], 'no uncaught error');
});

t.test('a statement running when the database stops fails; queued transactions waiting for the pool settle too', async (t) => {
  // Pool of 2: both connections busy in long transactions, more transactions queued behind them.
  const long = [0, 1].map(() =>
    settles(
      db.transaction().execute(async (trx) => {
        await sql`insert into outage_probe (note) values ('long')`.execute(trx);
        await sql`select pg_sleep(3)`.execute(trx);
      }),
    ),
  );
  await sleep(300);
  const queued = Array.from({ length: 6 }, (_, i) =>
    settles(
      db.transaction().execute(async (trx) => {
        await sql`insert into outage_probe (note) values (${`queued-${i}`})`.execute(trx);
      }),
    ),
  );
  await sleep(100);
  await pg.stop();
  await sleep(500);
  await pg.start();
  // porsager/postgres#1195: with reserve(), a queued transaction whose connection was
  // terminated and reconnected at once never settled.
  const all = await Promise.all([...long, ...queued]);
  t.same(all.filter((r) => r === 'hung').length, 0, 'every transaction settles');
  t.equal(all.slice(0, 2).filter((r) => r !== 'hung' && !r.ok).length, 2, 'the running ones fail');
  t.ok(await waitUntilServing(), 'the pool serves again');
  const committed = await sql<{ note: string }>`select note from outage_probe order by id`.execute(db);
  const okQueued = all.slice(2).filter((r) => r !== 'hung' && r.ok).length;
  t.equal(committed.rows.filter((r) => r.note.startsWith('queued-')).length, okQueued, 'exactly the transactions reported committed are in the table');
  t.notOk(committed.rows.some((r) => r.note === 'long'), 'the interrupted ones left nothing');
  t.same(uncaught, [], 'no uncaught error');
});

t.test('client-side deadlines: a statement past its deadline is abandoned with DatabaseTimeoutError', async (t) => {
  const tight = createDatabase({ url: pg.url, poolSize: 1, connectTimeoutMs: 1000, statementTimeoutMs: 0, transactionTimeoutMs: 1500 });
  t.teardown(() => tight.close());
  // No statement_timeout here, and the transaction is never idle (the server would end an
  // idle one): the client's transaction deadline is what ends it.
  const r = await settles(
    tight.db.transaction().execute(async (trx) => {
      await sql`select pg_sleep(2)`.execute(trx);
      await sql`select 2`.execute(trx);
    }),
  );
  const err = r !== 'hung' && !r.ok ? r.err : r;
  t.ok(err instanceof DatabaseTimeoutError && err.phase === 'transaction', `a transaction open past its deadline refuses further statements (${String(err)})`);
  const after = await settles(sql<{ n: number }>`select 3 as n`.execute(tight.db));
  t.ok(after !== 'hung' && after.ok, 'the connection is usable afterwards');
});

t.test('statement_timeout is set on every connection', async (t) => {
  const r = await sql<{ s: string; i: string }>`select current_setting('statement_timeout') as s, current_setting('idle_in_transaction_session_timeout') as i`.execute(db);
  t.same(r.rows[0], { s: '5s', i: '10s' });
});

t.test('a database that hangs (SIGSTOP) fails statements at their deadline; the pool recovers when it answers again', async (t) => {
  const hung = createDatabase({ url: pg.url, poolSize: 2, connectTimeoutMs: 1000, statementTimeoutMs: 1000, transactionTimeoutMs: 5000 });
  t.teardown(() => hung.close());
  await sql`select 1`.execute(hung.db);
  pg.pause();
  t.teardown(() => pg.resume());
  const calls = await Promise.all([
    settles(sql`select 1`.execute(hung.db)),
    settles(hung.db.transaction().execute((trx) => sql`select 1`.execute(trx))),
    settles(sql`select 2`.execute(hung.db)),
  ]);
  pg.resume();
  for (const r of calls) {
    t.not(r, 'hung', 'the call settles while the server hangs');
    t.ok(r !== 'hung' && !r.ok && r.err instanceof DatabaseTimeoutError, `with a deadline error (${r !== 'hung' && !r.ok ? (r.err as Error).message : ''})`);
  }
  let back = false;
  for (let i = 0; i < 50 && !back; i++) {
    const r = await settles(sql`select 1`.execute(hung.db), 5000);
    back = r !== 'hung' && r.ok;
    if (!back) await sleep(100);
  }
  t.ok(back, 'the pool answers again after the server resumes');
  t.same(uncaught, [], 'no uncaught error');
});

t.test("node-postgres (pg-boss's driver) on a connection the server dropped: every error it gives says unavailable", async (t) => {
  const { default: pgDriver } = await import('pg');
  const client = new pgDriver.Client({ connectionString: pg.url });
  const clientErrors: unknown[] = [];
  client.on('error', (err) => clientErrors.push(err));
  await client.connect();
  t.teardown(() => client.end().catch(() => {}));
  const [{ pid }] = (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows;
  const running = settles(client.query('select pg_sleep(5)'), 10_000);
  await sleep(200);
  const killer = await settles(sql`select pg_terminate_backend(${pid})`.execute(db));
  const dropped = await running;
  t.ok(killer !== 'hung' && killer.ok, 'the backend is terminated');
  t.ok(dropped !== 'hung' && !dropped.ok && isDatabaseUnavailable(dropped.err), `the statement running on it fails as unavailable (${dropped !== 'hung' && !dropped.ok ? (dropped.err as Error).message : ''})`);
  const after = await settles(client.query('select 1'));
  t.ok(after !== 'hung' && !after.ok, 'the client refuses later statements');
  t.ok(after !== 'hung' && !after.ok && isDatabaseUnavailable(after.err), `and that refusal says unavailable (${after !== 'hung' && !after.ok ? (after.err as Error).message : ''})`);
  const later = await settles(client.query('select 1'));
  t.ok(later !== 'hung' && !later.ok && isDatabaseUnavailable(later.err), `so does the next one (${later !== 'hung' && !later.ok ? (later.err as Error).message : ''})`);
  await client.end().catch(() => {});
  const closed = await settles(client.query('select 1'));
  t.ok(closed !== 'hung' && !closed.ok && isDatabaseUnavailable(closed.err), `and one on the closed client (${closed !== 'hung' && !closed.ok ? (closed.err as Error).message : ''})`);
});
