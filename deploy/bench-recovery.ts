/**
 * Recovery after a PostgreSQL outage, measured (a benchmark: it prints figures, it
 * asserts nothing). Starts a PostgreSQL of its own, the api, the engine and a worker
 * as real processes, a per-second schedule and a stream of submissions; then stops
 * the database for each of OUTAGES_S seconds in turn and, after each restart, prints
 * how long until the api accepts a task, the engine publishes and heartbeats, and a
 * worker fetches a job. Also the slowest 503 answered during the outages.
 *
 *   node deploy/bench-recovery.ts            # outages of 20, 5 and 5 s
 *   OUTAGES_S=30,10 node deploy/bench-recovery.ts
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startPrivatePostgres } from '@wombat/core/testing';
import { ADMIN_TOKEN, measureRecovery, startStack, startSubmissions, type Recovery } from './outage-harness.ts';

const outages = (process.env.OUTAGES_S ?? '20,5,5').split(',').map((s) => Number(s.trim()) * 1000);
if (outages.some((ms) => !(ms > 0))) {
  console.error('OUTAGES_S must be a comma-separated list of seconds, like 20,5,5');
  process.exit(2);
}

const cleanups: (() => unknown)[] = [];
const teardown = { teardown: (fn: () => unknown) => void cleanups.push(fn) };
const dataRoot = mkdtempSync(path.join(tmpdir(), 'wombat-bench-recovery-'));
try {
  const pg = await startPrivatePostgres(teardown);
  const stack = await startStack({ databaseUrl: pg.url, dataRoot, teardown: teardown.teardown });
  const created = await fetch(`${stack.apiUrl}/api/schedules`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'bench-every-second', job: 'canary', every: '1s', overlap: 'allow', missed: 'skip' }),
  });
  const scheduleId = ((await created.json()) as { id: number }).id;
  const subs = startSubmissions(stack.apiUrl, { everyMs: 100, deadlineMs: 10_000, fuzzEvery: 1_000_000 });
  await sleep(3000);
  const rows: (Recovery & { outageS: number })[] = [];
  for (const ms of outages) {
    await pg.stop();
    await sleep(ms);
    await pg.start();
    const r = await measureRecovery({ apiUrl: stack.apiUrl, databaseUrl: pg.url, scheduleId, restartedAt: Date.now(), limitMs: 60_000 });
    rows.push({ outageS: ms / 1000, ...r });
    await sleep(3000);
  }
  const answers = await subs.stop();
  const refused = answers.filter((a) => a.status === 503);
  const unanswered = answers.filter((a) => a.status === 0);
  console.log('\nrecovery after PostgreSQL restarts (ms from accepting connections again)');
  console.log('outage s | api accepts | engine publishes | engine heartbeats | worker fetches');
  for (const r of rows) {
    console.log(
      [r.outageS, r.apiAcceptsMs, r.enginePublishesMs, r.engineHeartbeatsMs, r.workerFetchesMs].map((v, i) => String(v).padStart(i === 0 ? 8 : [11, 16, 17, 14][i - 1]!)).join(' | '),
    );
  }
  const times = refused.map((a) => a.ms).sort((a, b) => a - b);
  console.log(
    `\nsubmissions: ${answers.length} (${answers.length - refused.length - unanswered.length} accepted, ${refused.length} answered 503, ${unanswered.length} unanswered); ` +
      `503 answer time p50 ${times[Math.floor(times.length / 2)] ?? '-'} ms, max ${times.at(-1) ?? '-'} ms`,
  );
  for (const p of stack.all) if (!p.alive()) console.log(`${p.name} exited during the run`);
} finally {
  for (const fn of cleanups.reverse()) await fn();
  rmSync(dataRoot, { recursive: true, force: true });
}
