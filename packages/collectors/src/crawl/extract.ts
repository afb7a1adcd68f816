import type { CheerioAPI } from 'cheerio';
import { describeBody } from '../http.ts';
import { splitSelector, type PriceSource } from './sources.ts';

/** One item as the page shows it, before its price is read. */
export interface RawItem {
  name: string;
  /** Price as shown; a JSON number is kept as a number. */
  price: string | number | undefined;
  currency?: string;
  /** Availability as shown: text, or a JSON boolean. */
  availability?: string | boolean;
  link?: string;
}

export type Extracted = { ok: true; items: RawItem[]; nameless: number } | { ok: false; problem: string };

/**
 * Finds the items of one page. A page where the items, or every item's name or
 * price, are not where the source says is "no longer matching": the caller fails
 * the source. A single item without a price is kept (it becomes unreadable).
 */
export async function extractItems(source: PriceSource, pageUrl: string, text: string, contentType = ''): Promise<Extracted> {
  if (source.format === 'json') return extractJson(source, pageUrl, text, contentType);
  // Loaded on first use: cheerio costs a worker's start about as much as the rest of the collectors.
  const cheerio = await import('cheerio');
  return extractHtml(cheerio.load(text), source, pageUrl);
}

function extractHtml($: CheerioAPI, source: PriceSource, pageUrl: string): Extracted {
  const nodes = $(source.items).toArray();
  type AnyNode = (typeof nodes)[number];
  if (nodes.length === 0) return { ok: false, problem: `items selector "${source.items}" matched nothing on the page` };
  const read = (el: AnyNode, spec: string | undefined): string | undefined => {
    if (!spec) return undefined;
    const { selector, attr } = splitSelector(spec);
    const target = selector ? $(el).find(selector).first() : $(el);
    if (target.length === 0) return undefined;
    const v = attr ? target.attr(attr) : target.text();
    return v === undefined ? undefined : clean(v);
  };
  const items: RawItem[] = [];
  let nameless = 0;
  let priced = 0;
  for (const el of nodes) {
    const name = read(el, source.nameField);
    const price = read(el, source.price);
    if (price !== undefined) priced++;
    if (!name) {
      nameless++;
      continue;
    }
    const item: RawItem = { name, price };
    const currency = read(el, source.currencyField);
    if (currency !== undefined) item.currency = currency;
    const availability = read(el, source.availability);
    if (availability !== undefined) item.availability = availability;
    const link = read(el, source.link);
    if (link) item.link = absolute(link, pageUrl);
    items.push(item);
  }
  if (items.length === 0) return { ok: false, problem: `name_field "${source.nameField}" matched nothing in any of the ${nodes.length} items` };
  if (priced === 0) return { ok: false, problem: `price "${source.price}" matched nothing in any of the ${nodes.length} items` };
  return { ok: true, items, nameless };
}

function extractJson(source: PriceSource, pageUrl: string, text: string, contentType: string): Extracted {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    // Never the body itself: this problem becomes the run's error, shown by the API, the dashboard and alerts.
    return { ok: false, problem: `the page is not JSON (${describeBody(contentType, text)})` };
  }
  const list = source.items === '$' ? doc : at(doc, source.items);
  if (!Array.isArray(list)) return { ok: false, problem: `items path "${source.items}" is not a list in the document` };
  if (list.length === 0) return { ok: false, problem: `items path "${source.items}" is an empty list` };
  const items: RawItem[] = [];
  let nameless = 0;
  let priced = 0;
  for (const entry of list) {
    const nameValue = at(entry, source.nameField);
    const priceValue = at(entry, source.price);
    if (priceValue !== undefined && priceValue !== null) priced++;
    if (typeof nameValue !== 'string' && typeof nameValue !== 'number') {
      nameless++;
      continue;
    }
    const name = clean(String(nameValue));
    if (!name) {
      nameless++;
      continue;
    }
    const item: RawItem = { name, price: typeof priceValue === 'number' ? priceValue : typeof priceValue === 'string' ? clean(priceValue) : priceValue == null ? undefined : JSON.stringify(priceValue) };
    const currency = source.currencyField ? at(entry, source.currencyField) : undefined;
    if (typeof currency === 'string') item.currency = clean(currency);
    const availability = source.availability ? at(entry, source.availability) : undefined;
    if (typeof availability === 'boolean') item.availability = availability;
    else if (typeof availability === 'string') item.availability = clean(availability);
    const link = source.link ? at(entry, source.link) : undefined;
    if (typeof link === 'string' && clean(link)) item.link = absolute(clean(link), pageUrl);
    items.push(item);
  }
  if (items.length === 0) return { ok: false, problem: `name_field "${source.nameField}" is missing in all ${list.length} items` };
  if (priced === 0) return { ok: false, problem: `price "${source.price}" is missing in all ${list.length} items` };
  return { ok: true, items, nameless };
}

function at(doc: unknown, path: string): unknown {
  let cur = doc;
  for (const key of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = Array.isArray(cur) && /^\d+$/.test(key) ? cur[Number(key)] : (cur as Record<string, unknown>)[key];
  }
  return cur;
}

/** Control characters (NUL above all: PostgreSQL text refuses it, 22021) are noise from the page, never content. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u0008\u000e-\u001f\u007f-\u009f]/g;

export function clean(s: string): string {
  return s.replace(CONTROL, '').replace(/\s+/g, ' ').trim().toWellFormed();
}

function absolute(link: string, base: string): string {
  try {
    return new URL(link, base).href;
  } catch {
    return link;
  }
}
