/**
 * Crawls the prices of the sources in PRICE_CRAWL_SOURCES by hand, as the daily
 * crawl-prices job does.
 *
 *   npx tsx packages/collectors/scripts/crawl-prices.ts [--sources a,b] [--dry-run]
 *
 * Stores one observation per item in Postgres (DATABASE_URL, or the embedded one);
 * --dry-run only reports what it read. A bar on a terminal, log lines otherwise;
 * exit code 0 only if every source succeeded.
 */
import { parseArgs } from 'node:util';
import { serializeError } from '@wombat/core/platform';
import { createCrawls } from '@wombat/collectors';
import { loadCrawlConfig, openContext, progressReporter, usageError } from './script-support.ts';

const USAGE = 'usage: crawl-prices [--sources name,name] [--dry-run]';
let args;
try {
  args = parseArgs({ options: { sources: { type: 'string' }, 'dry-run': { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } }, strict: true }).values;
} catch (err) {
  usageError((err as Error).message, USAGE);
}
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const sources = args.sources?.split(',').map((s) => s.trim()).filter(Boolean);
if (args.sources !== undefined && (!sources || sources.length === 0)) usageError('--sources needs at least one source name', USAGE);
const crawlConfig = loadCrawlConfig();
if (!crawlConfig.priceCrawlSources) usageError('PRICE_CRAWL_SOURCES is not set: point it at a sources file (see deploy/price-sources.example.yaml)', USAGE);

const ctx = await openContext('crawl-prices', { needDb: () => !args['dry-run'] });
const crawls = createCrawls(crawlConfig, { log: ctx.log, ...(ctx.db ? { db: ctx.db.db } : {}) });
let code = 0;
const progress = progressReporter(1, ctx.log);
try {
  const r = await crawls.crawlPrices({ ...(sources ? { sources } : {}), signal: ctx.signal, onProgress: progress.step('price crawl') });
  progress.done('price crawl', r.ok);
  progress.stop();
  for (const s of r.sources) {
    process.stdout.write(`${s.name}: ${s.status}, ${s.found} found (${s.priced} priced, ${s.soldOut} sold out, ${s.unreadable} unreadable), ${s.failed} of ${s.pages} page(s) failed\n`);
    for (const e of s.errors) process.stdout.write(`  ${e}\n`);
  }
  process.stdout.write(`${r.summary}; ${args['dry-run'] ? 'dry run, nothing stored' : `${r.stored} observations stored`}\n`);
  if (!r.ok) code = 1;
} catch (err) {
  progress.stop();
  ctx.log.error({ err: serializeError(err) }, 'price crawl failed');
  process.stderr.write(`crawl-prices failed: ${(err as Error).message}\n`);
  code = ctx.signal.aborted ? 130 : 1;
} finally {
  await ctx.close();
}
process.exit(code);
