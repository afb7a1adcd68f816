/**
 * Dashboard overview with a long history: GET /api/overview over real HTTP with an
 * empty run history (the baseline) and with 100,000 runs (a month of history, a
 * fifth of it in the last 24 h), then, when Debian's chromium is installed, the
 * time from opening the page to the overview being drawn. Prints figures; asserts
 * nothing.
 *
 *   npm run bench -w services/api
 *   BENCH_RUNS=300000 node ../../deploy/with-postgres.ts node bench/dashboard-overview.ts
 *   BENCH_ONLY=submit npm run bench -w services/api     (skips this one)
 * BENCH_RUNS (default 100000) runs in the history; BENCH_PAGE_LOADS (default 10) page loads per history.
 */
import { existsSync } from 'node:fs';
import { startBenchApi } from './bench-api.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 100_000);
const SAMPLES = 40;
const PAGE_LOADS = Number(process.env.BENCH_PAGE_LOADS ?? 10);
const CHROMIUM = '/usr/bin/chromium';

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

async function timeOverview(base: string): Promise<{ p50: number; p99: number }> {
  const get = async () => {
    const started = performance.now();
    const res = await fetch(`${base}/api/overview`);
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`overview answered ${res.status}`);
    return performance.now() - started;
  };
  for (let i = 0; i < 5; i++) await get();
  const times: number[] = [];
  for (let i = 0; i < SAMPLES; i++) times.push(await get());
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 50), p99: percentile(times, 99) };
}

async function timeBrowser(base: string): Promise<{ p50: number; max: number } | undefined> {
  if (!existsSync(CHROMIUM)) return undefined;
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const times: number[] = [];
    for (let i = 0; i < PAGE_LOADS; i++) {
      const page = await browser.newPage();
      await page.goto(`${base}/ui/#/`);
      await page.waitForSelector('[data-testid=queues] td');
      // The page's own clock: from the start of navigation to the overview drawn.
      times.push(await page.evaluate(() => performance.now()));
      await page.close();
    }
    times.sort((a, b) => a - b);
    return { p50: percentile(times, 50), max: times.at(-1)! };
  } finally {
    await browser.close();
  }
}

if (process.env.BENCH_ONLY && !process.env.BENCH_ONLY.split(',').includes('dashboard')) process.exit(0);
const teardowns: (() => unknown)[] = [];
try {
  const { base, database } = await startBenchApi(teardowns);

  const empty = await timeOverview(base);
  const emptyPage = await timeBrowser(base);

  // A month of history: mostly completed scheduled canaries, some failures, skips and missed occurrences.
  const started = performance.now();
  await database.sql`
    insert into wombat.runs (id, job, trigger, state, params, attempts, created_at, scheduled_for, published_at, started_at, finished_at, progress)
    select gen_random_uuid(), (array['canary', 'fetch-candles', 'collect-prices', 'backtest'])[1 + n % 4],
      case when n % 5 = 0 then 'task' else 'schedule' end,
      (array['completed', 'completed', 'completed', 'completed', 'completed', 'completed', 'failed', 'skipped', 'missed', 'cancelled'])[1 + n % 10],
      '{}', 1, t, t, t, t + interval '15 milliseconds', t + interval '2 seconds', 1
    from generate_series(1, ${RUNS}) n, lateral (select now() - (n * interval '30 days' / ${RUNS}) as t) x`;
  await database.sql`analyze wombat.runs`;
  const seedSeconds = (performance.now() - started) / 1000;

  const full = await timeOverview(base);
  const fullPage = await timeBrowser(base);
  console.log(`dashboard overview, ${RUNS.toLocaleString('en')} runs in the history (seeded in ${seedSeconds.toFixed(1)} s), ${SAMPLES} samples`);
  console.log('                                   p50 ms   p99 ms   ratio p50 vs empty');
  console.log(`GET /api/overview, empty history  ${empty.p50.toFixed(1).padStart(7)}  ${empty.p99.toFixed(1).padStart(7)}`);
  console.log(`GET /api/overview, ${RUNS / 1000}k runs     ${full.p50.toFixed(1).padStart(7)}  ${full.p99.toFixed(1).padStart(7)}   ${(full.p50 / empty.p50).toFixed(2)}x`);
  if (emptyPage && fullPage) {
    console.log('                                   p50 ms   max ms');
    console.log(`page drawn in chromium, empty     ${emptyPage.p50.toFixed(0).padStart(7)}  ${emptyPage.max.toFixed(0).padStart(7)}`);
    console.log(`page drawn in chromium, ${RUNS / 1000}k     ${fullPage.p50.toFixed(0).padStart(7)}  ${fullPage.max.toFixed(0).padStart(7)}   ${(fullPage.p50 / emptyPage.p50).toFixed(2)}x`);
  } else {
    console.log(`(${CHROMIUM} not installed: page render time not measured)`);
  }
} finally {
  for (const fn of teardowns.reverse()) await fn();
}
