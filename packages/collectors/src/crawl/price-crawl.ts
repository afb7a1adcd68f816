import { serializeError, ValidationError, type Logger } from '@wombat/core/platform';
import { clean, extractItems, type RawItem } from './extract.ts';
import { createPageFetcher, type PageFetcher } from './fetch-page.ts';
import { parsePrice, SOLD_OUT_PATTERN } from './price-parse.ts';
import { loadPriceSources, type PriceSource } from './sources.ts';
import { insertObservations, type CrawlDb, type Observation } from './store.ts';

export interface PriceCrawlOptions {
  /** Needed to store observations; without it a crawl only reports what it saw. */
  db?: CrawlDb;
  sourcesFile: string;
  /** Used when the sources file names none; say who you are and how to reach you. */
  userAgent: string;
  timeoutMs: number;
  retries: number;
  retryBaseDelayMs: number;
  /** Sources crawled at once (each host keeps its own politeness). */
  sourceConcurrency?: number;
  log: Logger;
  now?: () => Date;
}

export interface SourceResult {
  name: string;
  status: 'ok' | 'failed';
  pages: number;
  /** Items stored: priced + soldOut + unreadable. */
  found: number;
  priced: number;
  soldOut: number;
  unreadable: number;
  /** Pages that could not be fetched or no longer match the source's selectors. */
  failed: number;
  /** Items left out by the source's `match` list. */
  skipped: number;
  errors: string[];
}

export interface PriceCrawlResult {
  ok: boolean;
  summary: string;
  sources: SourceResult[];
  stored: number;
  requests: number;
}

const TOO_LARGE = 'price is 10^15 or more: not a price a shop shows';
const OUT_OF_STOCK = new RegExp(`${SOLD_OUT_PATTERN.source}|unavailable|not\\s*available|일시\\s*중단`, 'i');
const IN_STOCK = /재고\s*있음|구매\s*가능|판매\s*중|주문\s*가능|in\s*stock|available|add\s*to\s*cart|buy\s*now/i;

/**
 * Crawls every source (or the named ones): pages fetched politely, items read,
 * prices parsed, one observation per item stored per source as soon as that
 * source is done. A failing source never stops the others; the result says, per
 * source, what was found, unreadable and failed, and `ok` is false if any failed.
 */
export async function crawlPrices(
  o: PriceCrawlOptions,
  run: { runId?: string; sources?: string[]; signal?: AbortSignal; onProgress?: (fraction: number, message?: string) => void } = {},
): Promise<PriceCrawlResult> {
  const config = await loadPriceSources(o.sourcesFile);
  const known = new Set(config.sources.map((s) => s.name));
  const unknown = (run.sources ?? []).filter((n) => !known.has(n));
  if (unknown.length > 0) throw new ValidationError([`params.sources: unknown source ${unknown.join(', ')}; sources in ${config.file}: ${[...known].join(', ')}`]);
  const chosen = run.sources ? config.sources.filter((s) => run.sources!.includes(s.name)) : config.sources;
  const log = o.log.child({ component: 'price-crawl' });
  const fetcher = createPageFetcher({
    userAgent: config.userAgent ?? o.userAgent,
    timeoutMs: o.timeoutMs,
    retries: o.retries,
    retryBaseDelayMs: o.retryBaseDelayMs,
    budgetFor: (host) => config.hosts.get(host.toLowerCase()) ?? config.hosts.get(host.toLowerCase().replace(/:\d+$/, '')) ?? config.defaults,
    ...(o.db ? { db: o.db } : {}),
    log,
  });
  const totalPages = chosen.reduce((n, s) => n + s.urls.length, 0);
  let pagesDone = 0;
  const pageDone = (source: string) => run.onProgress?.(Math.min(0.99, ++pagesDone / Math.max(1, totalPages)), `${pagesDone}/${totalPages} pages (${source})`);

  const results = new Array<SourceResult>(chosen.length);
  let stored = 0;
  let next = 0;
  let stopping = false;
  const lanes = Array.from({ length: Math.min(o.sourceConcurrency ?? 4, chosen.length) }, async () => {
    while (next < chosen.length && !stopping && !run.signal?.aborted) {
      const i = next++;
      const source = chosen[i]!;
      try {
        const r = await crawlSource(source, fetcher, { ...o, log: log.child({ source: source.name }) }, run, pageDone);
        results[i] = r.result;
        stored += r.stored;
      } catch (err) {
        stopping = true;
        throw err;
      }
    }
  });
  // Every lane has ended before the crawl does (settled, not raced): a run that is over
  // has nothing of it still fetching or writing rows.
  const settled = await Promise.allSettled(lanes);
  run.signal?.throwIfAborted();
  const thrown = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (thrown) throw thrown.reason;
  const failed = results.filter((r) => r.status === 'failed');
  const total = (k: 'found' | 'unreadable' | 'failed') => results.reduce((n, r) => n + r[k], 0);
  const summary =
    `${results.length} source(s): ${results.length - failed.length} ok, ${failed.length} failed; ` +
    `${total('found')} items found, ${total('unreadable')} unreadable, ${total('failed')} page(s) failed` +
    (failed.length > 0 ? ` (${failed.map((f) => `${f.name}: ${f.errors[0]}`).join('; ')})` : '');
  run.onProgress?.(1, summary);
  return { ok: failed.length === 0, summary, sources: results, stored, requests: fetcher.requests() };
}

async function crawlSource(
  source: PriceSource,
  fetcher: PageFetcher,
  o: PriceCrawlOptions,
  run: { runId?: string; signal?: AbortSignal },
  pageDone: (source: string) => void,
): Promise<{ result: SourceResult; stored: number }> {
  const now = o.now ?? (() => new Date());
  const result: SourceResult = { name: source.name, status: 'ok', pages: source.urls.length, found: 0, priced: 0, soldOut: 0, unreadable: 0, failed: 0, skipped: 0, errors: [] };
  const rows = new Map<string, Observation>();
  const accept = source.format === 'json' ? 'application/json' : 'text/html,application/xhtml+xml;q=0.9,*/*;q=0.5';
  const privateHosts = source.allowPrivate ? new Set(source.urls.map((u) => new URL(u).hostname.toLowerCase())) : undefined;
  const pages = await Promise.allSettled(
    source.urls.map(async (url) => {
      try {
        const page = await fetcher.get(url, { ignoreRobots: source.ignoreRobots, accept, ...(privateHosts ? { privateHosts } : {}), ...(run.signal ? { signal: run.signal } : {}) });
        const observedAt = now();
        const extracted = await extractItems(source, page.url, page.text, page.contentType);
        if (!extracted.ok) throw new PageMismatch(`${url}: ${extracted.problem}; the page no longer matches the source's selectors`);
        for (const item of extracted.items) {
          if (source.match && !source.match.some((re) => re.test(item.name))) {
            result.skipped++;
            continue;
          }
          const row = observe(item, source, page.url, observedAt, run.runId ?? null);
          // The same product twice (a listing that shifted between pages): the first one counts.
          if (!rows.has(row.product)) rows.set(row.product, row);
        }
      } catch (err) {
        if (run.signal?.aborted) throw err;
        result.failed++;
        const message = err instanceof PageMismatch ? err.message : `${url}: ${(err as Error).message}`;
        result.errors.push(message);
        o.log.error({ url, ...(err instanceof PageMismatch ? { problem: message } : { err: serializeError(err) }) }, 'price source page failed');
      } finally {
        pageDone(source.name);
      }
    }),
  );
  // Only an abort escapes a page; the others are counted above.
  run.signal?.throwIfAborted();
  const escaped = pages.find((p): p is PromiseRejectedResult => p.status === 'rejected');
  if (escaped) throw escaped.reason;
  for (const r of rows.values()) {
    result.found++;
    if (r.status === 'priced') result.priced++;
    else if (r.status === 'sold_out') result.soldOut++;
    else result.unreadable++;
  }
  if (result.failed > 0) result.status = 'failed';
  let stored = 0;
  if (o.db && rows.size > 0) {
    try {
      stored = await insertObservations(o.db, [...rows.values()]);
    } catch (err) {
      // This source's rows only (one transaction); the others are stored or not on their own.
      // The run error names the SQLSTATE; the driver's message (which can quote values) goes to the journal.
      result.status = 'failed';
      result.errors.push(`storing ${rows.size} observation(s) failed (SQLSTATE ${sqlState(err) ?? 'unknown'})`);
      o.log.error({ err: serializeError(err) }, 'price source not stored');
    }
  }
  if (result.unreadable > 0) o.log.warn({ unreadable: result.unreadable }, 'price source has unreadable prices');
  const { name: _name, errors, ...counts } = result;
  o.log.info({ ...counts, errors: errors.length }, result.status === 'ok' ? 'price source crawled' : 'price source FAILED');
  return { result, stored };
}

class PageMismatch extends Error {}

function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * numeric(20,4) (0007_crawls.sql) holds 16 digits before the point; a 17-digit
 * "price" overflowed it (22003) and took the whole crawl down. No shop price
 * comes near 10^15, so anything at or above it is unreadable, not stored.
 */
const MAX_PRICE = 1e15;
/** Longest text stored per field: a page decides these lengths, so they are bounded here. */
const MAX_CHARS = { product: 500, raw: 200, url: 2000 } as const;

function bounded(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`.toWellFormed();
}

/**
 * One item as a row, every value checked before the database sees it: text
 * cleaned (no NUL or control characters, bounded length), a price that is not a
 * sane amount stored as `unreadable` with the reason.
 */
function observe(item: RawItem, source: PriceSource, pageUrl: string, observedAt: Date, runId: string | null): Observation {
  const raw = bounded(clean(item.price === undefined ? '' : String(item.price)), MAX_CHARS.raw);
  const base = { run_id: runId, source: source.name, product: bounded(clean(item.name), MAX_CHARS.product), url: bounded(clean(item.link ?? pageUrl), MAX_CHARS.url), raw, observed_at: observedAt };
  const stock = availability(item.availability);
  const stated = source.currency ?? item.currency;
  if (item.price === undefined) return { ...base, status: 'unreadable', price: null, currency: null, in_stock: stock, problem: 'no price element in the item' };
  if (typeof item.price === 'number') {
    if (!(item.price > 0) || !Number.isFinite(item.price)) return { ...base, status: 'unreadable', price: null, currency: null, in_stock: stock, problem: 'price is not above zero' };
    if (item.price >= MAX_PRICE) return { ...base, status: 'unreadable', price: null, currency: null, in_stock: stock, problem: TOO_LARGE };
    if (!stated || !/^[A-Za-z]{3}$/.test(stated)) {
      return { ...base, status: 'unreadable', price: null, currency: null, in_stock: stock, problem: 'no currency: set currency or currency_field on the source' };
    }
    return { ...base, status: 'priced', price: item.price, currency: stated.toUpperCase(), in_stock: stock, problem: null };
  }
  // A currency field showing a symbol ("₩", "원") is read like one in the price text.
  const iso = stated && /^[A-Za-z]{3}$/.test(stated) ? stated : undefined;
  const text = stated && !iso ? `${item.price} ${stated}` : item.price;
  const reading = parsePrice(text, { currency: iso, decimalSeparator: source.decimalSeparator });
  if (reading.kind === 'sold_out') return { ...base, status: 'sold_out', price: null, currency: null, in_stock: false, problem: null };
  if (reading.kind === 'unreadable') return { ...base, status: 'unreadable', price: null, currency: null, in_stock: stock, problem: reading.reason };
  if (reading.amount >= MAX_PRICE) return { ...base, status: 'unreadable', price: null, currency: null, in_stock: stock, problem: TOO_LARGE };
  return { ...base, status: 'priced', price: reading.amount, currency: reading.currency, in_stock: stock, problem: null };
}

function availability(v: string | boolean | undefined): boolean | null {
  if (typeof v === 'boolean') return v;
  if (v === undefined || v === '') return null;
  if (OUT_OF_STOCK.test(v)) return false;
  if (IN_STOCK.test(v)) return true;
  return null;
}
