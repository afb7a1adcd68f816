import { sql, type Transaction } from 'kysely';
import type { Condition } from './types.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Trx = Transaction<any>;

export interface DailyReport {
  /** Local date (in the report's time zone) the report is about. */
  day: string;
  jobs: { job: string; ok: number; failed: number; missed: number; skipped: number; cancelled: number; unfinished: number }[];
  latenessSeconds: { p50: number | null; p99: number | null; runs: number };
  candles: { exchange: string; candles: number }[];
  deadLetters: { now: number; new: number };
  alerts: { kind: string; severity: string; n: number }[];
}

/**
 * Whether today's report is due: the local time in `timezone` has passed
 * `time` (HH:MM). Returns the key the report is recorded under (once a day).
 */
export async function dailyReportDue(db: Trx, timezone: string, time: string): Promise<string | null> {
  const { rows } = await sql<{ today: string; due: boolean }>`
    select to_char((now() at time zone ${timezone})::date, 'YYYY-MM-DD') as today,
           (now() at time zone ${timezone})::time >= ${time}::time as due`.execute(db);
  const r = rows[0]!;
  return r.due ? `daily_report:${r.today}` : null;
}

/** Yesterday (a whole local day in `timezone`) in figures. */
export async function buildDailyReport(db: Trx, timezone: string): Promise<DailyReport> {
  const bounds = sql`(select (date_trunc('day', now() at time zone ${timezone}) - interval '1 day') at time zone ${timezone} as from_ts,
                             date_trunc('day', now() at time zone ${timezone}) at time zone ${timezone} as to_ts)`;
  const day = (await sql<{ day: string }>`select to_char((now() at time zone ${timezone})::date - 1, 'YYYY-MM-DD') as day`.execute(db)).rows[0]!.day;
  const jobs = await sql<DailyReport['jobs'][number]>`
    select r.job, count(*) filter (where state = 'completed')::int as ok, count(*) filter (where state = 'failed')::int as failed,
           count(*) filter (where state = 'missed')::int as missed, count(*) filter (where state = 'skipped')::int as skipped,
           count(*) filter (where state = 'cancelled')::int as cancelled,
           count(*) filter (where state not in ('completed', 'failed', 'missed', 'skipped', 'cancelled'))::int as unfinished
    from wombat.runs r, ${bounds} b
    where coalesce(r.scheduled_for, r.created_at) >= b.from_ts and coalesce(r.scheduled_for, r.created_at) < b.to_ts
    group by r.job order by r.job`.execute(db);
  const lateness = await sql<{ p50: number | null; p99: number | null; runs: number }>`
    select percentile_cont(0.5) within group (order by extract(epoch from r.started_at - r.scheduled_for))::float8 as p50,
           percentile_cont(0.99) within group (order by extract(epoch from r.started_at - r.scheduled_for))::float8 as p99,
           count(*)::int as runs
    from wombat.runs r, ${bounds} b
    where r.trigger = 'schedule' and r.started_at is not null and r.scheduled_for >= b.from_ts and r.scheduled_for < b.to_ts`.execute(db);
  // fetch-candles results carry { exchange, written }: the candles each run stored.
  const candles = await sql<{ exchange: string; candles: number }>`
    select r.result->>'exchange' as exchange, sum((r.result->>'written')::bigint)::float8 as candles
    from wombat.runs r, ${bounds} b
    where r.job = 'fetch-candles' and r.state = 'completed' and r.finished_at >= b.from_ts and r.finished_at < b.to_ts
      and jsonb_typeof(r.result->'written') = 'number' and r.result ? 'exchange'
    group by 1 order by 1`.execute(db);
  const dead = await sql<{ now: number; new: number }>`
    select count(*)::int as now, count(*) filter (where r.finished_at >= b.from_ts and r.finished_at < b.to_ts)::int as new
    from wombat.runs r, ${bounds} b where r.state = 'failed' and r.requeued_as is null`.execute(db);
  const alerts = await sql<{ kind: string; severity: string; n: number }>`
    select a.kind, a.severity, count(*)::int as n from wombat.alerts a, ${bounds} b
    where a.opened_at >= b.from_ts and a.opened_at < b.to_ts and a.kind not in ('daily_report', 'test', 'run_failed_burst')
    group by 1, 2 order by 1, 2`.execute(db);
  return {
    day,
    jobs: jobs.rows,
    latenessSeconds: lateness.rows[0] ?? { p50: null, p99: null, runs: 0 },
    candles: candles.rows,
    deadLetters: dead.rows[0] ?? { now: 0, new: 0 },
    alerts: alerts.rows,
  };
}

const secs = (v: number | null) => (v === null ? 'n/a' : `${Math.round(v * 1000) / 1000} s`);

/** The report as an alert message: plain text, a line per job. */
export function reportCondition(key: string, r: DailyReport): Condition {
  const lines = [
    `Runs by job (ok / failed / missed / skipped${r.jobs.some((j) => j.cancelled + j.unfinished > 0) ? ' / cancelled / unfinished' : ''}):`,
    ...(r.jobs.length === 0
      ? ['  none']
      : r.jobs.map((j) => `  ${j.job}: ${j.ok} / ${j.failed} / ${j.missed} / ${j.skipped}${j.cancelled + j.unfinished > 0 ? ` / ${j.cancelled} / ${j.unfinished}` : ''}`)),
    `Start lateness of scheduled runs: p50 ${secs(r.latenessSeconds.p50)}, p99 ${secs(r.latenessSeconds.p99)} (${r.latenessSeconds.runs} runs)`,
    `Candles collected: ${r.candles.length === 0 ? 'none recorded' : r.candles.map((c) => `${c.exchange} ${c.candles}`).join(', ')}`,
    `Dead letters: ${r.deadLetters.now} now, ${r.deadLetters.new} new that day`,
    `Alerts raised: ${r.alerts.length === 0 ? 'none' : r.alerts.map((a) => `${a.kind} (${a.severity}) ${a.n}`).join(', ')}`,
  ];
  const failed = r.jobs.reduce((s, j) => s + j.failed, 0);
  const ok = r.jobs.reduce((s, j) => s + j.ok, 0);
  return {
    key,
    kind: 'daily_report',
    severity: 'info',
    subject: `Wombat daily report for ${r.day}: ${ok} ok, ${failed} failed`,
    message: lines.join('\n'),
    details: r as unknown as Record<string, unknown>,
  };
}
