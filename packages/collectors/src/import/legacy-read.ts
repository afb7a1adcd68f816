import * as arrow from 'apache-arrow';
import * as pq from 'parquet-wasm';
import type { Timeframe } from '@wombat/core/jobs';
import { candleProblems, floorToTimeframe } from '../candle.ts';
import { emptyColumns, type Columns } from '../parquet-columns.ts';

/**
 * Reads one file of the replaced pipeline into Wombat's columns, or says why it
 * cannot: the column spellings it wrote (plain OHLCV or Upbit's field names), its
 * timestamps in whatever form pandas or a script left them, checked row by row.
 * Nothing is guessed: a file that is not clearly sound is refused whole.
 */

const TIME_NAMES = ['timestamp', 'datetime', 'date', 'candle_date_time_utc', 'time'];
const VALUE_NAMES = {
  open: ['open', 'opening_price'],
  high: ['high', 'high_price'],
  low: ['low', 'low_price'],
  close: ['close', 'trade_price'],
  volume: ['volume', 'candle_acc_trade_volume'],
  quoteVolume: ['quote_volume', 'candle_acc_trade_price', 'value'],
} as const;

export interface LegacyColumns {
  columns: Columns;
  /** The file has no quote volume: it is stored as 0 and not compared. */
  noQuoteVolume: boolean;
  /** The columns read, `role <- name`, for messages. */
  used: string[];
}

export type LegacyRead = { ok: true; value: LegacyColumns } | { ok: false; reason: string };

const fail = (reason: string): LegacyRead => ({ ok: false, reason });

/** A column by one of `names`, case-insensitively, in the order of `names`. */
function pick(table: arrow.Table, names: readonly string[]): string | undefined {
  const byLower = new Map(table.schema.fields.map((f) => [f.name.toLowerCase(), f.name]));
  for (const n of names) {
    const found = byLower.get(n.toLowerCase());
    if (found !== undefined) return found;
  }
  return undefined;
}

/** The pandas index column(s) named in the file's pandas metadata (a RangeIndex is not stored). */
function pandasIndex(table: arrow.Table): string[] {
  const raw = table.schema.metadata.get('pandas');
  if (!raw) return [];
  try {
    const meta = JSON.parse(raw) as { index_columns?: unknown };
    return Array.isArray(meta.index_columns) ? meta.index_columns.filter((c): c is string => typeof c === 'string') : [];
  } catch {
    return [];
  }
}

const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

/** Epoch ms of an ISO 8601 date or date-time; without an offset it is UTC. */
export function parseIsoUtc(text: string): number | undefined {
  const m = ISO.exec(text.trim());
  if (!m) return undefined;
  const [y, mo, d, h = '0', mi = '0', s = '0'] = m.slice(1, 7) as string[];
  const frac = m[7] ?? '';
  const ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)) + Number(`0.${frac || '0'}`) * 1000;
  // Date.UTC rolls 2025-02-30 over into March: refuse instead.
  const back = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)));
  if (back.getUTCMonth() !== Number(mo) - 1 || back.getUTCDate() !== Number(d) || back.getUTCHours() !== Number(h) || back.getUTCMinutes() !== Number(mi) || back.getUTCSeconds() !== Number(s)) return undefined;
  const zone = m[8];
  if (!zone || zone.toUpperCase() === 'Z') return ms;
  const z = /^([+-])(\d{2}):?(\d{2})?$/.exec(zone)!;
  const offsetMin = (Number(z[2]) * 60 + Number(z[3] ?? 0)) * (z[1] === '-' ? -1 : 1);
  return ms - offsetMin * 60_000;
}

/** Epoch numbers without a unit: chosen by size (seconds to 5138, ms from 1973, µs, ns). */
function epochUnitMs(sample: number): number {
  const a = Math.abs(sample);
  if (a < 1e11) return 1000;
  if (a < 1e14) return 1;
  if (a < 1e17) return 1e-3;
  return 1e-6;
}

/** Reads the time column into epoch ms, or says which row it cannot read. */
function readTimes(col: arrow.Vector, name: string, out: Float64Array): string | undefined {
  const type = col.type as arrow.DataType;
  // Arrow timestamps with a zone hold UTC instants; naive ones hold wall time, which is taken as UTC.
  // apache-arrow returns both, and dates, as epoch ms whatever the stored unit.
  const asMs = arrow.DataType.isTimestamp(type) || arrow.DataType.isDate(type);
  const isText = arrow.DataType.isUtf8(type) || arrow.DataType.isLargeUtf8(type) || (arrow.DataType.isDictionary(type) && arrow.DataType.isUtf8((type as arrow.Dictionary).dictionary));
  const isNumber = arrow.DataType.isInt(type) || arrow.DataType.isFloat(type);
  if (!asMs && !isText && !isNumber) return `time column "${name}" has type ${String(type)}, not a timestamp, a number or text`;
  let unit = 1;
  for (let i = 0; i < col.length; i++) {
    const v: unknown = col.get(i);
    if (v === null || v === undefined) return `time column "${name}" is empty at row ${i}`;
    let ms: number | undefined;
    if (isText) ms = parseIsoUtc(String(v));
    else {
      const n = Number(v as number | bigint);
      if (isNumber && i === 0) unit = epochUnitMs(n);
      ms = asMs ? n : n * unit;
    }
    if (ms === undefined || !Number.isFinite(ms)) return `time column "${name}" at row ${i} holds ${JSON.stringify(String(v))}, not a date-time`;
    out[i] = ms;
  }
  return undefined;
}

function readValues(col: arrow.Vector, name: string, out: Float64Array): string | undefined {
  const type = col.type as arrow.DataType;
  if (!arrow.DataType.isInt(type) && !arrow.DataType.isFloat(type)) return `column "${name}" has type ${String(type)}, not a number`;
  for (let i = 0; i < col.length; i++) {
    const v: unknown = col.get(i);
    if (v === null || v === undefined) return `column "${name}" is empty at row ${i}`;
    out[i] = Number(v as number | bigint);
  }
  return undefined;
}

const iso = (ms: number) => (Number.isFinite(ms) && Math.abs(ms) < 8.64e15 ? new Date(ms).toISOString() : String(ms));

/** Decodes and checks one old file: rows in order, no duplicate, sound prices, on the timeframe's boundaries. */
export function readLegacyParquet(bytes: Uint8Array, timeframe: Timeframe): LegacyRead {
  let table: arrow.Table;
  try {
    table = arrow.tableFromIPC(pq.readParquet(bytes, { batchSize: 256 * 1024 }).intoIPCStream());
  } catch (err) {
    return fail(`not a readable Parquet file (${err instanceof Error ? err.message : String(err)})`);
  }
  const timeName = pick(table, TIME_NAMES) ?? pick(table, ['__index_level_0__', ...pandasIndex(table)]);
  if (!timeName) {
    return fail(`no time column (looked for ${TIME_NAMES.slice(0, 4).join(', ')} and the pandas index; columns: ${table.schema.fields.map((f) => f.name).join(', ') || 'none'})`);
  }
  const n = table.numRows;
  const c = emptyColumns(n);
  const used = [`time <- ${timeName}`];
  const timeProblem = readTimes(table.getChild(timeName)!, timeName, c.time);
  if (timeProblem) return fail(timeProblem);
  let noQuoteVolume = false;
  for (const [role, names] of Object.entries(VALUE_NAMES) as [keyof typeof VALUE_NAMES, readonly string[]][]) {
    const name = pick(table, names);
    if (!name) {
      if (role === 'quoteVolume') {
        noQuoteVolume = true;
        continue;
      }
      return fail(`no ${role} column (looked for ${names.join(', ')})`);
    }
    used.push(`${role} <- ${name}`);
    const problem = readValues(table.getChild(name)!, name, c[role]);
    if (problem) return fail(problem);
  }
  for (let i = 0; i < n; i++) {
    const t = c.time[i]!;
    if (i > 0 && t === c.time[i - 1]) return fail(`duplicated timestamp ${iso(t)} at rows ${i - 1} and ${i}`);
    if (i > 0 && t < c.time[i - 1]!) return fail(`rows out of order: ${iso(t)} at row ${i} comes after ${iso(c.time[i - 1]!)}`);
    if (!(t >= 0) || t > 8.64e15 || floorToTimeframe(timeframe, new Date(t)).getTime() !== t) {
      return fail(`row ${i} starts at ${iso(t)}, not at the start of a ${timeframe} candle in UTC (local times stored as UTC?)`);
    }
    const problems = candleProblems({ time: new Date(t), open: c.open[i]!, high: c.high[i]!, low: c.low[i]!, close: c.close[i]!, volume: c.volume[i]!, quoteVolume: c.quoteVolume[i]! });
    if (problems.length > 0) return fail(`row ${i} (${iso(t)}): ${problems.join('; ')}`);
  }
  return { ok: true, value: { columns: c, noQuoteVolume, used } };
}
