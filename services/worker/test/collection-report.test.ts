import t from 'tap';
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { emailChannel, slackChannel, type AlertMessage } from '@wombat/core/alerts';
import { startFakeHook, startFakeSmtp } from '@wombat/core/alerts-fakes';
import { publishRun } from '@wombat/core/runs';
import { createTestDatabase } from '@wombat/core/testing';
import { csvCell } from '../src/report/collection-report.ts';
import { finished, startTestWorker, waitForRun } from './fixtures/harness.ts';

/**
 * The weekly report through a real worker: runs, candles, crawl readings, posts and
 * backups of last week (UTC) seeded in the tables, the report job run from the queue,
 * its figures checked against the seed, its message recorded once for the channels,
 * and the e-mail (CSV and HTML attached) and Slack summary as the channels send them.
 */
const tdb = await createTestDatabase(t);
const { boss } = await startTestWorker(t, tdb, { queues: ['collection-report'], reportChannels: ['email', 'slack'] });

/** Wednesday noon of last week, and of this week (outside the report). */
const [{ last, now }] = (
  await sql<{ last: Date; now: Date }>`
    select date_trunc('week', now() at time zone 'UTC') at time zone 'UTC' - interval '5 days' + interval '12 hours' as last,
           now() as now`.execute(tdb.db)
).rows as [{ last: Date; now: Date }];

async function run(job: string, state: string, at: Date, fields: { params?: object; result?: object; error?: object } = {}) {
  await sql`
    insert into wombat.runs (id, job, trigger, state, params, result, error, started_at, finished_at)
    values (${randomUUID()}, ${job}, 'schedule', ${state}, ${JSON.stringify(fields.params ?? {})}::text::jsonb, ${fields.result ? JSON.stringify(fields.result) : null}::text::jsonb,
            ${fields.error ? JSON.stringify(fields.error) : null}::text::jsonb, ${at}, ${at})`.execute(tdb.db);
}

const fetched = (exchange: string, symbol: string, written: number) => ({ result: { exchange, symbol, timeframe: '1D', fetched: written, written, requests: 1 } });
await run('fetch-candles', 'completed', last, fetched('upbit', 'KRW-BTC', 5));
await run('fetch-candles', 'completed', last, fetched('upbit', 'KRW-BTC', 2));
await run('fetch-candles', 'completed', last, fetched('upbit', 'KRW-ETH', 3));
await run('fetch-candles', 'completed', last, fetched('kis', '005930', 4));
await run('fetch-candles', 'completed', now, fetched('upbit', 'KRW-XRP', 100)); // this week: not in the report
await run('fetch-candles', 'failed', last, { params: { exchange: 'upbit', symbol: 'KRW-DOGE', timeframe: '1D' }, error: { code: 'rate_limited', message: '=HYPERLINK("http://evil")' } });
await run('collect-symbols', 'failed', last, { error: { code: 'kis_auth', message: 'KIS refused the app key' } });
await run('database-backup', 'completed', last);
await run('data-snapshot', 'failed', last, { error: { code: 'EACCES', message: 'permission denied' } });
// KRW-BTC stored for ten days with days 4 and 7 missing: two gaps.
await sql`
  insert into wombat.candles (exchange, symbol, timeframe, time, open, high, low, close, volume, quote_volume)
  select 'upbit', 'KRW-BTC', '1D', timestamptz '2026-01-01' + make_interval(days => d), 1, 1, 1, 1, 1, 1
  from generate_series(0, 9) d where d not in (3, 6)`.execute(tdb.db);
await sql`
  insert into wombat.price_observations (source, product, url, status, price, currency, raw, problem, observed_at) values
    ('shop-a', 'gpu', 'https://a.example/gpu', 'priced', 100, 'KRW', '100', null, ${last}),
    ('shop-a', 'cpu', 'https://a.example/cpu', 'priced', 50, 'KRW', '50', null, ${last}),
    ('shop-b', 'gpu', 'https://b.example/gpu', 'priced', 99, 'KRW', '99', null, ${last}),
    ('shop-b', 'ram', 'https://b.example/ram', 'unreadable', null, null, '??', 'no price found', ${last})`.execute(tdb.db);
await sql`
  insert into wombat.reddit_posts (id, subreddit, title, created_utc, score, num_comments, permalink, first_fetched_at, fetched_at) values
    ('p1', 'Korea', 'a', ${last}, 1, 0, '/r/korea/p1', ${last}, ${last}),
    ('p2', 'korea', 'b', ${last}, 1, 0, '/r/korea/p2', ${last}, ${last}),
    ('p3', 'hardware', 'c', ${now}, 1, 0, '/r/hardware/p3', ${now}, ${now})`.execute(tdb.db);

async function report() {
  const id = await publishRun(tdb.db, boss, { job: 'collection-report', params: { period: 'week', timezone: 'UTC' }, trigger: 'manual' });
  return waitForRun(tdb, id, finished);
}

t.test('the weekly report counts last week only, per exchange and timeframe, with causes, sources, posts and backups', async (t) => {
  const r = await report();
  t.equal(r.state, 'completed', JSON.stringify(r.error));
  t.match(r.result, { period: /^\d{4}-W\d{2}$/, recorded: true, channels: ['email', 'slack'], candles_added: 14, failed_runs: 3 });
  const [alert] = (await sql<{ key: string; kind: string; state: string; subject: string; message: string; details: Record<string, unknown> }>`
    select key, kind, state, subject, message, details from wombat.alerts where kind = 'collection_report'`.execute(tdb.db)).rows;
  t.match(alert, { key: `collection_report:week:${(r.result as { period: string }).period}`, state: 'resolved', subject: /^Wombat weekly collection report \d{4}-W\d{2}: 14 candles, 3 failed runs$/ });
  t.same((alert!.details as { series: unknown }).series, [
    { exchange: 'kis', timeframe: '1D', series: 1, candles_added: 4, gaps: null, failed_runs: 0 },
    { exchange: 'upbit', timeframe: '1D', series: 2, candles_added: 10, gaps: 2, failed_runs: 1 },
  ]);
  t.match((alert!.details as { failures: unknown }).failures, [
    { job: 'collect-symbols', error_code: 'kis_auth', runs: 1 },
    { job: 'data-snapshot', error_code: 'EACCES', runs: 1 },
    { job: 'fetch-candles', error_code: 'rate_limited', runs: 1 },
  ]);
  t.same((alert!.details as { sources: unknown }).sources, [
    { source: 'shop-a', observations: 2, priced: 2, unreadable: 0, healthy: true },
    { source: 'shop-b', observations: 2, priced: 1, unreadable: 1, healthy: false },
  ]);
  t.same((alert!.details as { posts: unknown }).posts, [{ subreddit: 'korea', posts: 2 }]);
  t.match((alert!.details as { backups: unknown }).backups, [
    { job: 'data-snapshot', completed: 0, failed: 1, last_completed_at: null },
    { job: 'database-backup', completed: 1, failed: 0, last_completed_at: String },
  ]);
  t.match(alert!.message, /Candles: 14 added to 3 series, 2 missing periods/);
  t.match(alert!.message, /Crawl sources: 1 healthy, failing: shop-b/);
  t.match(alert!.message, /Posts: r\/korea 2/);

  const deliveries = (await sql<{ channel: string; payload: AlertMessage }>`
    select channel, payload from wombat.alert_deliveries d join wombat.alerts a on a.id = d.alert_id where a.kind = 'collection_report' order by channel`.execute(tdb.db)).rows;
  t.same(deliveries.map((d) => d.channel), ['email', 'slack'], 'one message per channel of the worker\'s configuration');
  const files = deliveries[0]!.payload.attachments!;
  t.same(files.map((f) => f.filename.replace(/\d{4}-W\d{2}/, 'W')), ['collection-report-W.html', 'series-W.csv', 'failures-W.csv', 'sources-W.csv', 'posts-W.csv', 'backups-W.csv']);
  const series = files.find((f) => f.filename.startsWith('series-'))!;
  t.equal(series.content, 'exchange,timeframe,series,candles_added,gaps,failed_runs\r\nkis,1D,1,4,,0\r\nupbit,1D,2,10,2,1\r\n');
  const failures = files.find((f) => f.filename.startsWith('failures-'))!;
  t.match(failures.content, /\r\nfetch-candles,rate_limited,1,"'=HYPERLINK\(""http:\/\/evil""\)"\r\n/, 'a message that looks like a formula stays text');
  const html = files.find((f) => f.filename.endsWith('.html'))!;
  t.match(html.content, /<h2>Collection per exchange and timeframe<\/h2>/);
  t.match(html.content, /=HYPERLINK\(&quot;http:\/\/evil&quot;\)/, 'escaped in the page');
  t.notMatch(html.content, /<script|"http:\/\/evil"/);

  // As the channels send it: the e-mail with every file attached, Slack the summary alone.
  const smtp = await startFakeSmtp(t);
  const mail = emailChannel({ smtpUrl: smtp.url, from: 'wombat@example.com', to: ['ops@example.com'], timeoutMs: 5000, scrub: (s) => s });
  t.teardown(() => mail.close());
  t.match(await mail.send(deliveries[0]!.payload), { ok: true });
  const raw = smtp.messages[0]!.raw;
  for (const f of files) t.match(raw, new RegExp(`filename="?${f.filename.replace(/[.]/g, '\\.')}`), `${f.filename} attached`);
  const part = /filename="?series-[^\r\n]*\r?\n(?:[^\r\n]+\r?\n)*\r?\n([A-Za-z0-9+/=\r\n]+?)\r?\n--/.exec(raw);
  t.equal(part ? Buffer.from(part[1]!.replace(/\r?\n/g, ''), 'base64').toString('utf8') : raw, series.content, 'the CSV arrives as it was written');
  const hook = await startFakeHook(t);
  t.match(await slackChannel(hook.url, { timeoutMs: 5000, scrub: (s) => s }).send(deliveries[1]!.payload), { ok: true });
  const text = (hook.received[0] as { text: string }).text;
  t.match(text, /^:bar_chart: \*Wombat weekly collection report/);
  t.notMatch(text, /<table|exchange,timeframe/, 'Slack gets the summary, not the files');
});

t.test('a second run for the same period records nothing more', async (t) => {
  const r = await report();
  t.equal(r.state, 'completed');
  t.match(r.result, { recorded: false, already_recorded: true });
  const [{ n }] = (await sql<{ n: number }>`select count(*)::int as n from wombat.alert_deliveries`.execute(tdb.db)).rows as [{ n: number }];
  t.equal(n, 2, 'still one message per channel');
});

t.test('a bad time zone fails the run at once, saying what to give', async (t) => {
  const id = await publishRun(tdb.db, boss, { job: 'collection-report', params: { period: 'month', timezone: 'Mars/Olympus' }, trigger: 'manual' });
  const r = await waitForRun(tdb, id, finished);
  t.match(r, { state: 'failed', attempts: 1, error: { code: 'invalid_input', message: /"Mars\/Olympus" is not an IANA time zone/ } });
});

t.test('CSV cells: quotes, separators and formulas', async (t) => {
  t.equal(csvCell('a,b'), '"a,b"');
  t.equal(csvCell('say "hi"'), '"say ""hi"""');
  t.equal(csvCell('+1'), "'+1");
  t.equal(csvCell(-3), '-3', 'numbers stay numbers');
  t.equal(csvCell(null), '');
});
