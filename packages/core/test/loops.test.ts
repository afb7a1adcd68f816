import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { createDatabase, createLoopSupervisor, DatabaseTimeoutError, freePort, probeDatabase } from '@wombat/core/platform';
import { createEmptyTestDatabase, testLogger } from '@wombat/core/testing';

async function waitFor(check: () => boolean, limitMs = 10_000): Promise<boolean> {
  const until = Date.now() + limitMs;
  while (Date.now() < until) {
    if (check()) return true;
    await sleep(10);
  }
  return check();
}

const log = testLogger();

t.test('a round that overruns its deadline is abandoned (its signal aborts) and the next round runs', async (t) => {
  const stalls: string[] = [];
  const loops = createLoopSupervisor({ log, stallMs: 0, onStall: (i) => stalls.push(i.loop) });
  t.teardown(() => loops.stop());
  let rounds = 0;
  let abortedSignals = 0;
  const release: (() => void)[] = [];
  loops.every(
    'beat',
    20,
    (signal) => {
      rounds++;
      if (rounds === 1) {
        // The first round hangs until the test lets it go.
        signal.addEventListener('abort', () => abortedSignals++);
        return new Promise<void>((resolve) => release.push(resolve));
      }
      return Promise.resolve();
    },
    { roundTimeoutMs: 100 },
  );
  t.ok(await waitFor(() => rounds >= 3), 'later rounds run after the hung one is abandoned');
  const [h] = loops.health();
  t.equal(h!.overruns, 1, 'the overrun is counted');
  t.equal(h!.abandoned_unsettled, 1, 'the abandoned round is still unsettled');
  t.equal(abortedSignals, 1, 'its signal was aborted');
  t.equal(h!.ok, true, 'healthy again after a completed round');
  release[0]!();
  t.ok(await waitFor(() => loops.health()[0]!.abandoned_unsettled === 0), 'the abandoned round settling is noticed');
  t.same(stalls, []);
});

t.test('rounds that keep hanging stall the loop: onStall is called once', async (t) => {
  const stalls: { loop: string; failingMs: number }[] = [];
  const loops = createLoopSupervisor({ log, stallMs: 300, checkEveryMs: 20, onStall: (i) => stalls.push(i) });
  t.teardown(() => loops.stop());
  loops.every('stuck', 20, () => new Promise(() => {}), { roundTimeoutMs: 50 });
  t.ok(await waitFor(() => stalls.length > 0), 'onStall is called');
  await sleep(200);
  t.equal(stalls.length, 1, 'once');
  t.equal(stalls[0]!.loop, 'stuck');
  t.ok(stalls[0]!.failingMs > 300);
});

t.test('rounds failing because the database is unreachable do not stall the loop; other failures do', async (t) => {
  const stalls: string[] = [];
  const loops = createLoopSupervisor({ log, stallMs: 200, checkEveryMs: 20, onStall: (i) => stalls.push(i.loop) });
  t.teardown(() => loops.stop());
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
  let dbRounds = 0;
  loops.every('db-down', 10, async () => {
    dbRounds++;
    throw dbRounds % 2 ? refused : new DatabaseTimeoutError('connect', 10, 'select 1');
  }, { roundTimeoutMs: 1000 });
  loops.every('broken', 10, async () => {
    throw new TypeError('a bug');
  }, { roundTimeoutMs: 1000 });
  t.ok(await waitFor(() => stalls.includes('broken')), 'a loop failing with a bug stalls');
  // Past the stall limit by a margin, counted in rounds rather than wall-clock time.
  const start = dbRounds;
  t.ok(await waitFor(() => dbRounds > start + 10 && loops.health().find((h) => h.name === 'db-down')!.failing_ms > 400, 60_000), 'and keeps retrying');
  t.notOk(stalls.includes('db-down'), 'a loop failing only because the database is down does not');
  const dbDown = loops.health().find((h) => h.name === 'db-down')!;
  t.equal(dbDown.ok, false, 'it is reported failing');
  t.ok(dbDown.failing_ms > 200);
});

t.test('round() for event-driven loops resolves ok, failed or abandoned and never rejects', async (t) => {
  const loops = createLoopSupervisor({ log, stallMs: 0, onStall: () => {} });
  t.teardown(() => loops.stop());
  t.equal(await loops.round('pass', async () => 1, { roundTimeoutMs: 1000 }), 'ok');
  t.equal(await loops.round('pass', async () => { throw new Error('x'); }, { roundTimeoutMs: 1000 }), 'failed');
  t.equal(await loops.round('pass', () => sleep(500), { roundTimeoutMs: 20 }), 'abandoned');
  t.equal(loops.health()[0]!.overruns, 1);
});

t.test('a pool stuck while the database answers a new connection stalls the loop; a database that is down does not', async (t) => {
  // The server's role: a fresh connection must open within the 100 ms connect deadline below.
  const { url } = await createEmptyTestDatabase(t, 'wombat_t', { asAdmin: true });
  // One pooled connection, held by a transaction that never ends: every round waits for a
  // connection and fails at the connect deadline, as it would if the database were down.
  // The deadline leaves a busy machine time to open the holding transaction itself.
  const database = createDatabase({ url, poolSize: 1, connectTimeoutMs: 1000, applicationName: 'wombat-test' });
  let release: (() => void) | undefined;
  let held: Promise<unknown> = Promise.resolve();
  t.teardown(async () => {
    release?.();
    await held.catch(() => {});
    await database.close();
  });
  for (let attempt = 0; attempt < 20 && release === undefined; attempt++) {
    const began = new Promise<void>((resolveBegan) => {
      held = database.db.transaction().execute(() => new Promise<void>((resolve) => ((release = resolve), resolveBegan())));
    });
    // BEGIN may miss the connect deadline on a loaded machine: try again.
    await Promise.race([began, held.catch(() => {})]);
  }
  t.ok(release, 'the pool\'s only connection is held');
  const down = `postgres://postgres@127.0.0.1:${await freePort()}/nothing`;
  t.equal(await probeDatabase(down, 5000), false, 'nothing answers at a free port');
  t.equal(await probeDatabase(url, 10_000), true, 'the database answers a connection of its own');

  const run = async (probeUrl: string, done: (r: { stalls: string[]; probes: number; answers: boolean[]; failures: unknown[] }) => boolean) => {
    const r = { stalls: [] as string[], probes: 0, answers: [] as boolean[], failures: [] as unknown[] };
    const loops = createLoopSupervisor({
      log,
      stallMs: 300,
      checkEveryMs: 20,
      onStall: (i) => r.stalls.push(i.loop),
      // Generous: a probe that times out on a loaded machine would read as "database down".
      probe: async () => {
        r.probes++;
        const answer = await probeDatabase(probeUrl, 10_000);
        r.answers.push(answer);
        return answer;
      },
    });
    t.teardown(() => loops.stop());
    const round = () =>
      sql`select 1`.execute(database.db).catch((err: unknown) => {
        r.failures.push(err);
        throw err;
      });
    loops.every('beat', 20, round, { roundTimeoutMs: 30_000 });
    t.ok(await waitFor(() => done(r), 120_000), 'the loop got where this case needs it');
    loops.stop();
    return r;
  };

  // Enough failed rounds, and the probe's answer: a stall, if any, would follow it at once.
  const unreachable = await run(down, (r) => r.failures.length > 3 && r.answers.length >= 1);
  t.ok(unreachable.failures.every((e) => e instanceof DatabaseTimeoutError && e.phase === 'connect'), 'every round failed waiting for a connection');
  t.ok(unreachable.probes >= 1, 'the database was probed');
  t.same(unreachable.stalls, [], 'not stalled while the database does not answer a new connection either');

  const stuck = await run(url, (r) => r.stalls.length > 0);
  t.same(stuck.stalls, ['beat'], 'stalled: the database answers, the pool does not');
  t.equal(stuck.probes, 1, 'after one probe');
});
