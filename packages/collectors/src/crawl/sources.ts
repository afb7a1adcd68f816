import { readFile } from 'node:fs/promises';
// cheerio-select alone (not cheerio) checks selectors: the sources are checked at every worker
// start, and cheerio itself is loaded only when a crawl reads a page.
import { select } from 'cheerio-select';
import Type, { type Static } from 'typebox';
import Value from 'typebox/value';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '@wombat/core/platform';
import { describeErrors } from '@wombat/core/jobs';

/**
 * The price crawl's sources file (PRICE_CRAWL_SOURCES, JSON or YAML): which pages
 * to read, how to find each item on them, and how politely to ask each host.
 * Checked as a whole before anything is fetched; every bad entry is reported.
 */
const politeness = {
  requestsPerSecond: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 50, description: 'requests per second to one host' })),
  concurrency: Type.Optional(Type.Integer({ minimum: 1, maximum: 16, description: 'requests in flight to one host at once' })),
};
const closed = { additionalProperties: false } as const;
const field = Type.String({ minLength: 1, maxLength: 500 });

const sourceSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100 }),
    url: Type.Optional(Type.String({ minLength: 1, maxLength: 2000 })),
    urls: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 2000 }), { minItems: 1, maxItems: 200 })),
    format: Type.Optional(Type.Union([Type.Literal('html'), Type.Literal('json')], { description: 'html or json' })),
    items: field,
    name_field: Type.Optional(field),
    price: field,
    currency: Type.Optional(Type.String({ minLength: 1, maxLength: 10 })),
    currency_field: Type.Optional(field),
    availability: Type.Optional(field),
    link: Type.Optional(field),
    match: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 500 }), { minItems: 1, maxItems: 200 })),
    decimal_separator: Type.Optional(Type.Union([Type.Literal(','), Type.Literal('.')], { description: '"," or "."' })),
    ignore_robots: Type.Optional(Type.Boolean()),
    allow_private: Type.Optional(Type.Boolean({ description: 'the source\'s own hosts may be on loopback or private addresses' })),
  },
  closed,
);

const fileSchema = Type.Object(
  {
    user_agent: Type.Optional(Type.String({ minLength: 1, maxLength: 300 })),
    defaults: Type.Optional(Type.Object(politeness, closed)),
    hosts: Type.Optional(Type.Record(Type.String(), Type.Object(politeness, closed))),
    sources: Type.Array(Type.Unknown(), { minItems: 1, maxItems: 1000 }),
  },
  closed,
);

type RawSource = Static<typeof sourceSchema>;

export interface HostPoliteness {
  requestsPerSecond: number;
  concurrency: number;
}

export interface PriceSource {
  name: string;
  urls: string[];
  format: 'html' | 'json';
  /** CSS selector (html) or dot path (json, "$" for the document) of each item. */
  items: string;
  /** Within an item: selector or path of its name; html `sel@attr` reads an attribute. */
  nameField: string;
  price: string;
  currency?: string;
  currencyField?: string;
  availability?: string;
  link?: string;
  match?: RegExp[];
  decimalSeparator?: ',' | '.';
  ignoreRobots: boolean;
  /** Its own hosts (those of `urls`) may be on private addresses; where they redirect may not. */
  allowPrivate: boolean;
}

export interface PriceSources {
  file: string;
  userAgent?: string;
  defaults: HostPoliteness;
  hosts: Map<string, HostPoliteness>;
  sources: PriceSource[];
}

export const DEFAULT_POLITENESS: HostPoliteness = { requestsPerSecond: 1, concurrency: 1 };

/** Reads and checks the sources file; throws one ConfigError naming every problem and the entry it is in. */
export async function loadPriceSources(file: string): Promise<PriceSources> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`PRICE_CRAWL_SOURCES: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`]);
  }
  return parsePriceSources(text, file);
}

export function parsePriceSources(text: string, file: string): PriceSources {
  const where = `PRICE_CRAWL_SOURCES (${file})`;
  let doc: unknown;
  try {
    doc = /\.json$/i.test(file) ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError([`${where}: not valid ${/\.json$/i.test(file) ? 'JSON' : 'YAML'}: ${(err as Error).message.split('\n')[0]}`]);
  }
  if (!Value.Check(fileSchema, doc)) throw new ConfigError(describeErrors(fileSchema, doc, 'file').map((p) => `${where}: ${p}`));
  const problems: string[] = [];
  const hosts = new Map<string, HostPoliteness>();
  const defaults = { ...DEFAULT_POLITENESS, ...doc.defaults };
  for (const [host, p] of Object.entries(doc.hosts ?? {})) {
    if (!/^[a-z0-9.-]+(:\d+)?$/i.test(host)) problems.push(`${where}: hosts."${host}" must be a host name such as shop.example.com (with :port if not the default)`);
    hosts.set(host.toLowerCase(), { ...defaults, ...p });
  }
  const sources: PriceSource[] = [];
  const names = new Set<string>();
  doc.sources.forEach((raw, i) => {
    const label = `sources[${i}]${isRecord(raw) && typeof raw.name === 'string' ? ` "${raw.name}"` : ''}`;
    const say = (p: string) => problems.push(`${where}: ${label}: ${p}`);
    if (!Value.Check(sourceSchema, raw)) {
      for (const p of describeErrors(sourceSchema, raw, 'source')) say(p.replace(/^source\.?\s*/, '') || 'is invalid');
      return;
    }
    const checked = checkSource(raw, say);
    if (!checked) return;
    if (names.has(checked.name)) say(`name "${checked.name}" is used by an earlier source; names must be unique`);
    names.add(checked.name);
    sources.push(checked);
  });
  if (problems.length > 0) throw new ConfigError(problems);
  return { file, ...(doc.user_agent ? { userAgent: doc.user_agent } : {}), defaults, hosts, sources };
}

function checkSource(raw: RawSource, say: (p: string) => void): PriceSource | undefined {
  const before = { n: 0 };
  const fail = (p: string) => {
    before.n++;
    say(p);
  };
  const format = raw.format ?? 'html';
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(raw.name)) fail('name must be letters, digits, ".", "_" or "-", starting with a letter or digit');
  if (raw.currency !== undefined && !/^[A-Za-z]{3}$/.test(raw.currency)) fail(`currency "${raw.currency}" must be an ISO 4217 code such as KRW, USD or EUR`);
  if (raw.url && raw.urls) fail('give url or urls, not both');
  const urls = raw.urls ?? (raw.url ? [raw.url] : []);
  if (urls.length === 0) fail('needs url (or urls)');
  for (const u of urls) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(u);
    } catch {
      /* reported below */
    }
    if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) fail(`url "${u}" must be an absolute http(s) URL`);
  }
  if (!raw.name_field) fail('needs name_field: where each item\'s name is');
  if (raw.currency && raw.currency_field) fail('give currency (fixed) or currency_field (read from the page), not both');
  const fields: [string, string | undefined][] = [
    ['items', raw.items],
    ['name_field', raw.name_field],
    ['price', raw.price],
    ['currency_field', raw.currency_field],
    ['availability', raw.availability],
    ['link', raw.link],
  ];
  for (const [key, value] of fields) {
    if (value === undefined) continue;
    const problem = format === 'html' ? selectorProblem(value, key === 'items') : pathProblem(value, key === 'items');
    if (problem) fail(`${key} "${value}" ${problem}`);
  }
  const match: RegExp[] = [];
  for (const m of raw.match ?? []) {
    try {
      match.push(new RegExp(m, 'iu'));
    } catch (err) {
      fail(`match "${m}" is not a regular expression: ${(err as Error).message}`);
    }
  }
  if (before.n > 0) return undefined;
  return {
    name: raw.name,
    urls,
    format,
    items: raw.items,
    nameField: raw.name_field!,
    price: raw.price,
    ...(raw.currency ? { currency: raw.currency.toUpperCase() } : {}),
    ...(raw.currency_field ? { currencyField: raw.currency_field } : {}),
    ...(raw.availability ? { availability: raw.availability } : {}),
    ...(raw.link ? { link: raw.link } : {}),
    ...(match.length > 0 ? { match } : {}),
    ...(raw.decimal_separator ? { decimalSeparator: raw.decimal_separator } : {}),
    ignoreRobots: raw.ignore_robots === true,
    allowPrivate: raw.allow_private === true,
  };
}

/** `selector` or `selector@attribute`; the selector must compile. */
export function splitSelector(spec: string): { selector: string; attr?: string } {
  const m = /^(.*?)@([A-Za-z_:][-A-Za-z0-9_:.]*)$/.exec(spec);
  return m ? { selector: m[1]!.trim(), attr: m[2]! } : { selector: spec.trim() };
}

function selectorProblem(spec: string, isItems: boolean): string | undefined {
  const { selector, attr } = splitSelector(spec);
  if (isItems && attr) return 'must be a plain CSS selector (no @attribute)';
  // "@href" alone reads an attribute of the item itself.
  if (selector === '' && attr) return undefined;
  try {
    select(selector, []);
    return undefined;
  } catch (err) {
    return `is not a CSS selector: ${(err as Error).message}`;
  }
}

function pathProblem(p: string, isItems: boolean): string | undefined {
  if (p === '$') return isItems ? undefined : 'must name a field; "$" is only for items (the whole document)';
  if (!/^[^.\s][^.]*(\.[^.]+)*$/.test(p)) return 'must be a dot path such as data.products or price.amount';
  return undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
