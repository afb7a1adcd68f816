import { sql, type Kysely } from 'kysely';
import { missingPeriods } from '@wombat/core/jobs';
import type { Attachment, Condition } from '@wombat/core/alerts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any>;

export type ReportPeriod = 'week' | 'month';

/**
 * The weekly or monthly collection report: what was collected, what is missing, what
 * failed and why, how the crawls and the backups went. Read from the run history and
 * the collectors' own tables for the last whole period (ISO week or calendar month) in
 * the report's time zone.
 */
export interface CollectionReport {
  period: ReportPeriod;
  /** 2026-W49 or 2026-11. */
  label: string;
  timezone: string;
  from: string;
  to: string;
  /** Per exchange and timeframe: series collected, candles added, missing periods in their stored range, failed runs. */
  series: { exchange: string; timeframe: string; series: number; candles_added: number; gaps: number | null; failed_runs: number }[];
  /** Runs that failed for good, per job and error code, with the latest message. */
  failures: { job: string; error_code: string; runs: number; latest_message: string }[];
  /** Price-crawl sources: observations, priced, unreadable; healthy when every reading was priced or sold out. */
  sources: { source: string; observations: number; priced: number; unreadable: number; healthy: boolean }[];
  posts: { subreddit: string; posts: number }[];
  /** Backups and data snapshots made. */
  backups: { job: string; completed: number; failed: number; last_completed_at: string | null }[];
}

const BACKUP_JOBS = ['database-backup', 'data-snapshot'];

export async function buildCollectionReport(db: Db, period: ReportPeriod, timezone: string): Promise<CollectionReport> {
  const unit = period === 'week' ? 'week' : 'month';
  const step = sql.raw(`interval '1 ${unit}'`);
  const { rows: b } = await sql<{ from_ts: Date; to_ts: Date; label: string }>`
    select (date_trunc(${unit}, now() at time zone ${timezone}) - ${step}) at time zone ${timezone} as from_ts,
           date_trunc(${unit}, now() at time zone ${timezone}) at time zone ${timezone} as to_ts,
           to_char(date_trunc(${unit}, now() at time zone ${timezone}) - ${step}, ${period === 'week' ? 'IYYY-"W"IW' : 'YYYY-MM'}) as label`.execute(db);
  const { from_ts: from, to_ts: to, label } = b[0]!;
  const inPeriod = (col: string) => sql`${sql.ref(col)} >= ${from} and ${sql.ref(col)} < ${to}`;

  // fetch-candles results carry { exchange, symbol, timeframe, written }.
  const collected = await sql<{ exchange: string; timeframe: string; symbol: string; written: string }>`
    select result->>'exchange' as exchange, result->>'timeframe' as timeframe, result->>'symbol' as symbol,
           sum(case when jsonb_typeof(result->'written') = 'number' then (result->>'written')::bigint else 0 end)::text as written
    from wombat.runs
    where job = 'fetch-candles' and state = 'completed' and ${inPeriod('finished_at')} and result ? 'exchange' and result ? 'timeframe'
    group by 1, 2, 3`.execute(db);
  const failedFetches = await sql<{ exchange: string; timeframe: string; n: number }>`
    select params->>'exchange' as exchange, params->>'timeframe' as timeframe, count(*)::int as n
    from wombat.runs where job = 'fetch-candles' and state = 'failed' and ${inPeriod('finished_at')} group by 1, 2`.execute(db);
  const stored = await sql<{ exchange: string; symbol: string; timeframe: string; first_time: Date; last_time: Date; candles: string }>`
    select exchange, symbol, timeframe, first_time, last_time, candles::text from wombat.candle_series
    where (exchange, symbol, timeframe) in (
      select result->>'exchange', result->>'symbol', result->>'timeframe' from wombat.runs
      where job = 'fetch-candles' and state = 'completed' and ${inPeriod('finished_at')} and result ? 'symbol')`.execute(db);
  const storedBy = new Map(stored.rows.map((r) => [`${r.exchange} ${r.symbol} ${r.timeframe}`, r]));
  const series = new Map<string, CollectionReport['series'][number]>();
  const entry = (exchange: string, timeframe: string) => {
    const k = `${exchange} ${timeframe}`;
    let e = series.get(k);
    if (!e) series.set(k, (e = { exchange, timeframe, series: 0, candles_added: 0, gaps: null, failed_runs: 0 }));
    return e;
  };
  for (const r of collected.rows) {
    const e = entry(r.exchange, r.timeframe);
    e.series++;
    e.candles_added += Number(r.written);
    const s = storedBy.get(`${r.exchange} ${r.symbol} ${r.timeframe}`);
    const gaps = s ? missingPeriods(s.exchange, s.timeframe, new Date(s.first_time), new Date(s.last_time), Number(s.candles)) : null;
    if (gaps !== null) e.gaps = (e.gaps ?? 0) + gaps;
  }
  for (const r of failedFetches.rows) entry(r.exchange ?? 'unknown', r.timeframe ?? 'unknown').failed_runs += r.n;

  const failures = await sql<CollectionReport['failures'][number]>`
    select job, coalesce(error->>'code', 'unknown') as error_code, count(*)::int as runs,
           left(coalesce((array_agg(error->>'message' order by finished_at desc))[1], ''), 300) as latest_message
    from wombat.runs where state = 'failed' and ${inPeriod('finished_at')}
    group by 1, 2 order by 3 desc, 1, 2`.execute(db);
  const sources = await sql<{ source: string; observations: number; priced: number; unreadable: number }>`
    select source, count(*)::int as observations, count(*) filter (where status = 'priced')::int as priced,
           count(*) filter (where status = 'unreadable')::int as unreadable
    from wombat.price_observations where ${inPeriod('observed_at')} group by 1 order by 1`.execute(db);
  const posts = await sql<{ subreddit: string; posts: number }>`
    select lower(subreddit) as subreddit, count(*)::int as posts from wombat.reddit_posts
    where ${inPeriod('first_fetched_at')} group by 1 order by 1`.execute(db);
  const backups = await sql<{ job: string; completed: number; failed: number; last_completed_at: Date | null }>`
    select j.job, count(r.*) filter (where r.state = 'completed')::int as completed, count(r.*) filter (where r.state = 'failed')::int as failed,
           max(r.finished_at) filter (where r.state = 'completed') as last_completed_at
    from unnest(${BACKUP_JOBS}::text[]) as j(job)
    left join wombat.runs r on r.job = j.job and r.finished_at >= ${from} and r.finished_at < ${to}
    group by 1 order by 1`.execute(db);

  return {
    period,
    label,
    timezone,
    from: new Date(from).toISOString(),
    to: new Date(to).toISOString(),
    series: [...series.values()].sort((a, c) => a.exchange.localeCompare(c.exchange) || a.timeframe.localeCompare(c.timeframe)),
    failures: failures.rows,
    sources: sources.rows.map((s) => ({ ...s, healthy: s.unreadable === 0 })),
    posts: posts.rows,
    backups: backups.rows.map((r) => ({ ...r, last_completed_at: r.last_completed_at ? new Date(r.last_completed_at).toISOString() : null })),
  };
}

/**
 * One CSV cell (RFC 4180). Texts that come from outside (error messages of exchanges and
 * shops) must not become formulas in a spreadsheet: a cell starting with = + - @ or a tab
 * is prefixed with an apostrophe.
 */
export function csvCell(v: string | number | boolean | null): string {
  if (v === null) return '';
  let s = String(v);
  if (typeof v === 'string' && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function csv(headers: string[], rows: (string | number | boolean | null)[][]): string {
  return [headers, ...rows].map((r) => r.map(csvCell).join(',')).join('\r\n') + '\r\n';
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

function htmlTable(title: string, headers: string[], rows: (string | number | boolean | null)[][]): string {
  const cell = (v: string | number | boolean | null) => `<td${typeof v === 'number' ? ' class="n"' : ''}>${escapeHtml(v === null ? '–' : String(v))}</td>`;
  const body = rows.length === 0 ? `<tr><td colspan="${headers.length}">none</td></tr>` : rows.map((r) => `<tr>${r.map(cell).join('')}</tr>`).join('\n');
  return `<h2>${escapeHtml(title)}</h2>\n<table><tr>${headers.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr>\n${body}\n</table>`;
}

export function reportTables(r: CollectionReport): { title: string; file: string; headers: string[]; rows: (string | number | boolean | null)[][] }[] {
  return [
    { title: 'Collection per exchange and timeframe', file: 'series', headers: ['exchange', 'timeframe', 'series', 'candles_added', 'gaps', 'failed_runs'], rows: r.series.map((s) => [s.exchange, s.timeframe, s.series, s.candles_added, s.gaps, s.failed_runs]) },
    { title: 'Failed runs and their causes', file: 'failures', headers: ['job', 'error_code', 'runs', 'latest_message'], rows: r.failures.map((f) => [f.job, f.error_code, f.runs, f.latest_message]) },
    { title: 'Price-crawl sources', file: 'sources', headers: ['source', 'observations', 'priced', 'unreadable', 'healthy'], rows: r.sources.map((s) => [s.source, s.observations, s.priced, s.unreadable, s.healthy]) },
    { title: 'Posts collected per subreddit', file: 'posts', headers: ['subreddit', 'posts'], rows: r.posts.map((p) => [p.subreddit, p.posts]) },
    { title: 'Backups and data snapshots', file: 'backups', headers: ['job', 'completed', 'failed', 'last_completed_at'], rows: r.backups.map((b) => [b.job, b.completed, b.failed, b.last_completed_at]) },
  ];
}

/** The report as a message: a short summary (Slack), an HTML page and a CSV per table (e-mail attachments, webhook). */
export function reportMessage(r: CollectionReport): Condition {
  const word = r.period === 'week' ? 'weekly' : 'monthly';
  const candles = r.series.reduce((s, x) => s + x.candles_added, 0);
  const seriesN = r.series.reduce((s, x) => s + x.series, 0);
  const gaps = r.series.some((x) => x.gaps !== null) ? r.series.reduce((s, x) => s + (x.gaps ?? 0), 0) : null;
  const failed = r.failures.reduce((s, x) => s + x.runs, 0);
  const failing = r.sources.filter((s) => !s.healthy).map((s) => s.source);
  const lines = [
    `${r.label} (${r.from} to ${r.to}, ${r.timezone})`,
    `Candles: ${candles} added to ${seriesN} series${gaps === null ? '' : `, ${gaps} missing periods in their stored ranges`}`,
    `Failed runs: ${failed === 0 ? 'none' : `${failed} (${r.failures.slice(0, 3).map((f) => `${f.job} ${f.error_code} ${f.runs}`).join(', ')}${r.failures.length > 3 ? ', ...' : ''})`}`,
    `Crawl sources: ${r.sources.length === 0 ? 'none observed' : `${r.sources.length - failing.length} healthy${failing.length ? `, failing: ${failing.slice(0, 5).join(', ')}` : ''}`}`,
    `Posts: ${r.posts.length === 0 ? 'none' : r.posts.map((p) => `r/${p.subreddit} ${p.posts}`).join(', ')}`,
    `Backups: ${r.backups.map((b) => `${b.job} ${b.completed} made${b.failed ? `, ${b.failed} failed` : ''}`).join('; ')}`,
  ];
  const tables = reportTables(r);
  const title = `Wombat ${word} collection report ${r.label}`;
  const html =
    `<!doctype html>\n<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>` +
    '<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}td.n{text-align:right}</style></head><body>\n' +
    `<h1>${escapeHtml(title)}</h1>\n<p>${escapeHtml(lines[0]!)}</p>\n` +
    tables.map((t) => htmlTable(t.title, t.headers, t.rows)).join('\n') +
    '\n</body></html>\n';
  const attachments: Attachment[] = [
    { filename: `collection-report-${r.label}.html`, content_type: 'text/html; charset=utf-8', content: html },
    ...tables.map((t) => ({ filename: `${t.file}-${r.label}.csv`, content_type: 'text/csv; charset=utf-8', content: csv(t.headers, t.rows) })),
  ];
  return {
    key: `collection_report:${r.period}:${r.label}`,
    kind: 'collection_report',
    severity: 'info',
    subject: `${title}: ${candles} candles, ${failed} failed runs`,
    message: lines.join('\n'),
    details: r as unknown as Record<string, unknown>,
    attachments,
  };
}
