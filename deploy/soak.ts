/**
 * The chaos soak (npm run soak): 2 scheduler-engines, 3 workers and the api as processes
 * on a PostgreSQL of its own, canary tasks ~10/s and busy schedules of every overlap
 * policy, and for DURATION_S seconds faults on a sequence drawn from SEED: engine
 * SIGKILL, worker SIGKILL mid-job, worker SIGTERM, api SIGKILL (each then restarted),
 * PostgreSQL fast restart, PostgreSQL stopped 10-60 s. Then it settles, stops every
 * process with SIGTERM, prints a table of what must never happen (runs executed twice,
 * lost while their worker lived, runs contradicting their jobs, stuck runs, uncovered
 * or doubled occurrences, 202s without a run, 5xx, unclean exits) and exits 1 when any
 * count is not 0, naming the offending runs with their execution lines and rows.
 *
 *   npm run soak                          # 300 s of faults, SEED 1
 *   DURATION_S=1800 SEED=42 npm run soak
 *   SOAK_DIR=/tmp/soak npm run soak       # keep each process's output and the execution log there
 *                                         # (SOAK_LOG_LEVEL=debug: the services' log level)
 *   SOAK_CPU_BURNERS=1 npm run soak       # a busy loop per burner beside the services all along:
 *                                         # a slow machine stretches every recovery toward the job expiries
 */
import { spawn } from 'node:child_process';
import { randomFaults, runSoak } from './soak-harness.ts';

const durationS = Number(process.env.DURATION_S ?? '300');
const seed = Number(process.env.SEED ?? '1');
const burners = Number(process.env.SOAK_CPU_BURNERS ?? '0');
if (!(durationS > 0) || !Number.isInteger(seed) || !(Number.isInteger(burners) && burners >= 0 && burners <= 16)) {
  console.error('DURATION_S must be a number of seconds above 0, SEED an integer and SOAK_CPU_BURNERS a whole number from 0 to 16');
  process.exit(2);
}
const ENGINES = 2;
const WORKERS = 3;

const cleanups: (() => unknown)[] = [];
let failed = true;
for (let i = 0; i < burners; i++) {
  const burner = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
  cleanups.push(() => burner.kill('SIGKILL'));
}
try {
  const faults = randomFaults(seed, durationS * 1000, { engines: ENGINES, workers: WORKERS });
  console.log(`soak: SEED ${seed}, ${durationS} s of faults (${faults.length} planned)${burners > 0 ? `, ${burners} CPU burner(s) beside it` : ''}`);
  const report = await runSoak({
    faults,
    faultsForMs: durationS * 1000,
    seed,
    engines: ENGINES,
    workers: WORKERS,
    ...(process.env.SOAK_DIR ? { keepDir: process.env.SOAK_DIR } : {}),
    ...(process.env.SOAK_LOG_LEVEL ? { logLevel: process.env.SOAK_LOG_LEVEL } : {}),
    teardown: (fn) => void cleanups.push(fn),
    log: (line) => console.log(line),
  });
  console.log(`\n${report.summary.join('\n')}`);
  console.log(report.ok ? '\nsoak passed' : '\nsoak FAILED');
  failed = !report.ok;
} catch (err) {
  console.error('soak could not run:', err);
} finally {
  for (const fn of cleanups.reverse()) await fn();
}
process.exit(failed ? 1 : 0);
