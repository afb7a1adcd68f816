import t from 'tap';
import { HEARTBEAT_INTERVAL_MS } from '../outage-harness.ts';
import { CHECKS, type CheckName } from '../soak-checks.ts';
import { FAULT_KINDS, type Fault } from '../soak-faults.ts';
import { runSoak } from '../soak-harness.ts';

/**
 * The chaos soak with a fixed fault sequence, one of each kind: 2 engines, 3 workers and
 * the api as processes on a PostgreSQL of this file's own, canary tasks ~10/s sleeping
 * 0-8 s and schedules of every overlap policy, while a worker is SIGKILLed mid-job, an
 * engine SIGKILLed, PostgreSQL stopped for 10 s (longer than every heartbeat limit, which the
 * services here have scaled down from the 15 s defaults to 6 s) with jobs in flight, a worker
 * SIGTERMed with a 7 s canary running, the api SIGKILLed and
 * PostgreSQL restarted fast. Afterwards nothing ran twice, nothing was lost while its
 * worker lived, runs agree with their jobs, nothing is stuck, every occurrence is recorded
 * once, every 202 has its run and job, no request hung, fuzzed keys answered 400, every
 * service recovered on its own and exits 0 on SIGTERM. Every assertion of the former
 * chaos test (three database outages under load) is here too.
 */
t.setTimeout(300_000);

/**
 * Job heartbeats stale after 6 s, worker heartbeats after 6 s, the reconciler taking a 6 s gap
 * for an outage: the outage below outlasts each, as a 20 s one outlasts the defaults.
 */
const HEARTBEATS = { JOB_HEARTBEAT_S: '6', WORKER_HEARTBEAT_INTERVAL_MS: '2000', ENGINE_RUN_RECONCILE_INTERVAL_MS: '2000' };

const FAULTS: Fault[] = [
  { kind: 'worker-kill', afterMs: 2_000, target: 1 },
  { kind: 'engine-kill', afterMs: 1_000, target: 1 },
  { kind: 'pg-outage', afterMs: 2_000, outageMs: 10_000 },
  { kind: 'worker-term', afterMs: 2_000, inFlightSleepMs: 7_000 },
  { kind: 'api-kill', afterMs: 1_000 },
  { kind: 'pg-restart', afterMs: 2_000 },
];

t.test('a fault of each kind under load: nothing run twice, lost, stuck, contradicted or hung; every service recovers', async (t) => {
  const startedAt = Date.now();
  const report = await runSoak({
    faults: FAULTS,
    seed: 7,
    settleMs: 60_000,
    env: HEARTBEATS,
    // SOAK_DIR keeps each process's output and the execution log, to look into a failure (SOAK_LOG_LEVEL=debug for more).
    ...(process.env.SOAK_DIR ? { keepDir: process.env.SOAK_DIR } : {}),
    ...(process.env.SOAK_LOG_LEVEL ? { logLevel: process.env.SOAK_LOG_LEVEL } : {}),
    teardown: (fn) => t.teardown(fn),
    log: (line) => t.comment(line),
  });
  t.comment(`soak took ${((Date.now() - startedAt) / 1000).toFixed(0)} s`);
  for (const line of report.summary) t.comment(line);

  t.same(report.faults.map((f) => f.fault.kind).sort(), [...FAULT_KINDS].sort(), 'one fault of each kind injected');
  const outage = report.faults.find((f) => f.fault.kind === 'pg-outage')!;
  t.ok(outage.inFlight > 0, `handlers were running when PostgreSQL stopped (${outage.inFlight})`);
  const kill = report.faults.find((f) => f.fault.kind === 'worker-kill')!;
  t.ok(kill.inFlightThere! > 0, `the SIGKILLed worker was running handlers (${kill.inFlightThere})`);
  const term = report.faults.find((f) => f.fault.kind === 'worker-term')!;
  t.ok(term.run, 'a 7 s canary was running when its worker got SIGTERM');
  const termRun = report.evidence.runs.find((r) => r.id === term.run);
  t.equal(termRun?.state, 'completed', 'the canary of the SIGTERMed worker was handed back and completed');
  for (const f of report.faults.filter((x) => x.recovery)) {
    for (const [k, v] of Object.entries(f.recovery!)) t.ok(Number.isFinite(v), `${f.fault.kind}: recovered (${k} ${v} ms)`);
  }

  for (const [k, label] of Object.entries(CHECKS) as [CheckName, string][]) {
    const offenders = report.findings.offenders[k];
    t.equal(offenders.length, 0, `${label}: ${offenders.slice(0, 20).join(', ') || 'none'}`);
  }

  const tasks = report.evidence.answers.filter((a) => a.kind === 'task');
  const accepted = tasks.filter((a) => a.status === 202).length;
  const refused = tasks.filter((a) => a.status === 503).length;
  t.ok(accepted > 50 && refused > 10, `submissions: ${accepted} accepted, ${refused} refused during outages`);
  const fuzz = report.evidence.answers.filter((a) => a.kind === 'fuzz');
  t.ok(fuzz.length >= 3 && report.fuzzDuringOutage.length >= 2, `fuzzed requests sent (${fuzz.length}, ${report.fuzzDuringOutage.length} during the outage)`);

  const everySecond = report.occurrences.find((o) => o.name === 'soak-allow-1s')!;
  t.equal(everySecond.published + everySecond.missed, everySecond.total, 'every occurrence of the allow schedule published, or recorded missed (policy skip)');
  t.ok(everySecond.missed > 0, 'the outage left missed occurrences');
  for (const o of report.occurrences) t.ok(o.published > 0, `${o.name}: occurrences published`);

  t.ok(report.beforeStop.engineBeatAgeMs >= 0 && report.beforeStop.engineBeatAgeMs < 3 * HEARTBEAT_INTERVAL_MS, `engine heartbeat fresh (${report.beforeStop.engineBeatAgeMs} ms old)`);
  t.ok(report.beforeStop.completedSinceLastDatabaseFault > 0, 'workers complete jobs after the last database fault');
  t.same(report.beforeStop.dead, [], 'every service still running before the final stop');
});
