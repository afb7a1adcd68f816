import t from 'tap';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as arrow from 'apache-arrow';
import * as pq from 'parquet-wasm';
import { importLegacyParquet, legacyTimeframe, parquetPath, readCandlesParquet, withFileLock, writeCandlesParquet, type Candle, type ImportReport, type SeriesOutcome } from '@wombat/collectors';
import { rows, tempDataRoot } from './helpers.ts';

/**
 * Files as the replaced pipeline (pandas, scripts over Upbit's answers) left them,
 * written here with apache-arrow and parquet-wasm, imported into Wombat's layout.
 */
const H = 3_600_000;
const D = 24 * H;

function candles(start: number, stepMs: number, n: number, price = 100): Candle[] {
  return Array.from({ length: n }, (_, i) => {
    const p = price + i + 0.25;
    return { time: new Date(start + i * stepMs), open: p, high: p + 2.5, low: p - 1.5, close: p + 1, volume: 10 + i / 8, quoteVolume: (10 + i / 8) * p };
  });
}

function timestamps(type: arrow.DataType, values: bigint[]): arrow.Vector {
  return arrow.makeVector({ type, data: BigInt64Array.from(values) } as never);
}

/** A Parquet file of `columns`, with pandas-style schema metadata when given. */
async function writeOld(file: string, columns: Record<string, arrow.Vector>, pandas?: object): Promise<void> {
  const table = new arrow.Table(columns);
  if (pandas) table.schema.metadata.set('pandas', JSON.stringify(pandas));
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, pq.writeParquet(pq.Table.fromIPCStream(arrow.tableToIPC(table, 'stream'))));
}

const f64 = (list: Candle[], k: keyof Omit<Candle, 'time'>) => arrow.makeVector(Float64Array.from(list, (c) => c[k]));
const ohlcv = (list: Candle[]) => ({ open: f64(list, 'open'), high: f64(list, 'high'), low: f64(list, 'low'), close: f64(list, 'close'), volume: f64(list, 'volume') });
const ms = (list: Candle[]) => list.map((c) => BigInt(c.time.getTime()));

// The series the good files hold.
const btc1h = candles(Date.UTC(2025, 0, 1), H, 48, 140_000_000);
const eth1d = candles(Date.UTC(2024, 0, 1), D, 30, 3_000_000);
const xrp1m = candles(Date.UTC(2025, 2, 1), 60_000, 90, 700);
const sol5m = candles(Date.UTC(2025, 5, 1), 5 * 60_000, 20, 200_000);
const eth4h = candles(Date.UTC(2024, 6, 1), 4 * H, 12, 3_500_000);

async function buildOldTree(dir: string, outside: string): Promise<void> {
  // Plain columns, an Arrow timestamp in ms with a zone.
  await writeOld(path.join(dir, 'KRW-BTC/1H/2025.parquet'), { timestamp: timestamps(new arrow.TimestampMillisecond('UTC'), ms(btc1h)), ...ohlcv(btc1h), quote_volume: f64(btc1h, 'quoteVolume') });
  // pandas: a naive ns DatetimeIndex named "dt", known only from the pandas metadata.
  await writeOld(
    path.join(dir, 'KRW-ETH/1d/2024.parquet'),
    { ...ohlcv(eth1d), dt: timestamps(new arrow.TimestampNanosecond(null), eth1d.map((c) => BigInt(c.time.getTime()) * 1_000_000n)) },
    { index_columns: ['dt'], column_indexes: [], columns: [], creator: { library: 'pyarrow' }, pandas_version: '2.2.3' },
  );
  // pandas with an unnamed index: __index_level_0__, µs.
  await writeOld(
    path.join(dir, 'KRW-ETH/4h/2024.parquet'),
    { ...ohlcv(eth4h), __index_level_0__: timestamps(new arrow.TimestampMicrosecond(null), eth4h.map((c) => BigInt(c.time.getTime()) * 1000n)) },
    { index_columns: ['__index_level_0__'] },
  );
  // Upbit's answer as stored by a script: field names, ISO text without an offset (UTC) and the KST one beside it.
  await writeOld(path.join(dir, 'KRW-XRP/1m/2025.parquet'), {
    market: arrow.vectorFromArray(xrp1m.map(() => 'KRW-XRP'), new arrow.Utf8()),
    candle_date_time_utc: arrow.vectorFromArray(xrp1m.map((c) => c.time.toISOString().slice(0, 19)), new arrow.Utf8()),
    candle_date_time_kst: arrow.vectorFromArray(xrp1m.map((c) => new Date(c.time.getTime() + 9 * H).toISOString().slice(0, 19)), new arrow.Utf8()),
    opening_price: f64(xrp1m, 'open'),
    high_price: f64(xrp1m, 'high'),
    low_price: f64(xrp1m, 'low'),
    trade_price: f64(xrp1m, 'close'),
    candle_acc_trade_volume: f64(xrp1m, 'volume'),
    candle_acc_trade_price: f64(xrp1m, 'quoteVolume'),
  });
  // Epoch seconds in an int64 column.
  await writeOld(path.join(dir, 'KRW-SOL/5m/2025.parquet'), { timestamp: arrow.makeVector(BigInt64Array.from(sol5m, (c) => BigInt(c.time.getTime() / 1000))), ...ohlcv(sol5m) });

  // Files to refuse, one reason each.
  const good = await readFile(path.join(dir, 'KRW-BTC/1H/2025.parquet'));
  await mkdir(path.join(dir, 'KRW-BTC/4H'), { recursive: true });
  await writeFile(path.join(dir, 'KRW-BTC/4H/2025.parquet'), good.subarray(0, good.length - 40));
  const bad = (list: Candle[]) => ({ timestamp: timestamps(new arrow.TimestampMillisecond('UTC'), ms(list)), ...ohlcv(list) });
  const two = candles(Date.UTC(2025, 0, 1), H, 3);
  await writeOld(path.join(dir, 'KRW-ADA/2H/2025.parquet'), bad(two));
  await writeOld(path.join(dir, 'KRW-ADA/1H/2025.parquet'), { timestamp: timestamps(new arrow.TimestampMillisecond('UTC'), ms(two)), open: f64(two, 'open'), high: f64(two, 'high'), low: f64(two, 'low'), close: f64(two, 'close') });
  await writeOld(path.join(dir, 'KRW-DOT/1H/2025.parquet'), bad([two[1]!, two[0]!, two[2]!]));
  await writeOld(path.join(dir, 'KRW-DOGE/1H/2025.parquet'), bad([two[0]!, two[1]!, two[1]!]));
  await writeOld(path.join(dir, 'KRW-LINK/1H/2025.parquet'), bad([two[0]!, { ...two[1]!, close: NaN }, two[2]!]));
  await writeOld(path.join(dir, 'KRW-AVAX/1H/2025.parquet'), bad([two[0]!, { ...two[1]!, low: -1 }, two[2]!]));
  await writeOld(path.join(dir, 'KRW-TRX/1H/2025.parquet'), bad([two[0]!, two[1]!, { ...two[2]!, high: two[2]!.low - 1 }]));
  // Passed over: other files, and a link to a file outside the folder.
  await writeFile(path.join(dir, 'KRW-BTC/1H/notes.txt'), 'not data');
  await writeOld(path.join(outside, 'KRW-EOS/1H/2025.parquet'), bad(two));
  await mkdir(path.join(dir, 'KRW-EOS/1H'), { recursive: true });
  await symlink(path.join(outside, 'KRW-EOS/1H/2025.parquet'), path.join(dir, 'KRW-EOS/1H/2025.parquet'));
  await symlink(outside, path.join(dir, 'elsewhere'));
}

const REFUSED: Record<string, RegExp> = {
  'KRW-BTC/4H/2025.parquet': /not a readable Parquet file/,
  'KRW-ADA/2H/2025.parquet': /unknown timeframe "2H"/,
  'KRW-ADA/1H/2025.parquet': /no volume column/,
  'KRW-DOT/1H/2025.parquet': /rows out of order/,
  'KRW-DOGE/1H/2025.parquet': /duplicated timestamp 2025-01-01T01:00:00.000Z/,
  'KRW-LINK/1H/2025.parquet': /row 1 .*close must be a finite number/,
  'KRW-AVAX/1H/2025.parquet': /row 1 .*low must be a finite number >= 0, got -1/,
  'KRW-TRX/1H/2025.parquet': /row 2 .*high\/low/,
};

async function treeHashes(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const p = path.join(e.parentPath, e.name);
    out[path.relative(dir, p)] = createHash('sha256').update(await readFile(p)).digest('hex') + ` ${(await stat(p)).mtimeMs}`;
  }
  return out;
}

const figures = (r: ImportReport) =>
  Object.fromEntries(r.series.map((s: SeriesOutcome) => [`${s.market} ${s.timeframe}`, `+${s.added} =${s.present} !${s.conflicting}${s.conflicting > 0 ? ` ${s.winner}` : ''}`]));
const read = (dataRoot: string, symbol: string, timeframe: '1H' | '1D' | '4H' | '1m' | '5m') =>
  readCandlesParquet(dataRoot, { exchange: 'upbit', symbol, timeframe }, new Date(0), new Date(Date.UTC(2100, 0, 1)));

t.test('maps the old timeframe folders to Wombat timeframes', async (t) => {
  t.same(['1m', '3m', '15m', '30m', '1H', '1h', '60m', '4H', '4h', '1D', '1d', '1W', '1M', '2H', '1s'].map(legacyTimeframe), ['1m', '3m', '15m', '30m', '1H', '1H', '1H', '4H', '4H', '1D', '1D', '1W', '1M', undefined, undefined]);
});

t.test('imports the old layout into Wombat once, refuses what it cannot read, never touches the sources', async (t) => {
  const root = await tempDataRoot(t);
  const dir = path.join(root, 'old');
  const dataRoot = path.join(root, 'wombat-data');
  await buildOldTree(dir, path.join(root, 'outside'));
  const sourcesBefore = await treeHashes(dir);

  // Already collected by Wombat: the first 10 hours as in the old file, 2 hours with other values.
  const stored = [...btc1h.slice(0, 10), ...btc1h.slice(10, 12).map((c) => ({ ...c, close: c.close + 0.5 }))];
  await writeCandlesParquet(dataRoot, { exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1H' }, stored, { overwrite: false });
  const storedBefore = await treeHashes(dataRoot);

  const expected = {
    'KRW-BTC 1H': '+36 =10 !2 stored',
    'KRW-ETH 1D': '+30 =0 !0',
    'KRW-ETH 4H': '+12 =0 !0',
    'KRW-SOL 5m': '+20 =0 !0',
    'KRW-XRP 1m': '+90 =0 !0',
  };
  const dry = await importLegacyParquet({ dir, dataRoot, exchange: 'upbit', dryRun: true });
  t.same(figures(dry), expected, 'a dry run reports what the import will do');
  t.same(await treeHashes(dataRoot), storedBefore, 'a dry run writes nothing');
  t.equal(dry.refused, Object.keys(REFUSED).length);

  const first = await importLegacyParquet({ dir, dataRoot, exchange: 'upbit' });
  t.same(figures(first), expected);
  t.equal(first.refused, Object.keys(REFUSED).length);
  for (const [file, reason] of Object.entries(REFUSED)) t.match(first.files.find((f) => f.file === file)?.refused, reason, file);
  t.same(first.files.filter((f) => f.refused === undefined).map((f) => f.file).sort(), ['KRW-BTC/1H/2025.parquet', 'KRW-ETH/1d/2024.parquet', 'KRW-ETH/4h/2024.parquet', 'KRW-SOL/5m/2025.parquet', 'KRW-XRP/1m/2025.parquet']);
  t.same(first.skipped.map((s) => s.relative).sort(), ['KRW-EOS/1H/2025.parquet', 'elsewhere']);
  t.match(first.skipped[0]!.reason, /symbolic link out of the directory/);

  // Read back through the collectors' reader: every value and timestamp, the stored ones kept on conflict.
  t.same(rows(await read(dataRoot, 'KRW-BTC', '1H')), rows([...stored, ...btc1h.slice(12)]));
  t.same(rows(await read(dataRoot, 'KRW-ETH', '1D')), rows(eth1d.map((c) => ({ ...c, quoteVolume: 0 }))), 'no quote volume in the file: 0');
  t.same(rows(await read(dataRoot, 'KRW-ETH', '4H')), rows(eth4h.map((c) => ({ ...c, quoteVolume: 0 }))));
  t.same(rows(await read(dataRoot, 'KRW-XRP', '1m')), rows(xrp1m));
  t.same(rows(await read(dataRoot, 'KRW-SOL', '5m')), rows(sol5m.map((c) => ({ ...c, quoteVolume: 0 }))));
  t.same(first.series.find((s) => s.market === 'KRW-XRP')?.noQuoteVolume, false);

  const second = await importLegacyParquet({ dir, dataRoot, exchange: 'upbit' });
  t.same(figures(second), { 'KRW-BTC 1H': '+0 =46 !2 stored', 'KRW-ETH 1D': '+0 =30 !0', 'KRW-ETH 4H': '+0 =12 !0', 'KRW-SOL 5m': '+0 =20 !0', 'KRW-XRP 1m': '+0 =90 !0' }, 'a second import adds nothing');

  const preferDry = await importLegacyParquet({ dir, dataRoot, exchange: 'upbit', preferImport: true, dryRun: true });
  t.same(figures(preferDry)['KRW-BTC 1H'], '+0 =46 !2 import');
  t.same(rows(await read(dataRoot, 'KRW-BTC', '1H')), rows([...stored, ...btc1h.slice(12)]), 'a dry run changes nothing');
  const prefer = await importLegacyParquet({ dir, dataRoot, exchange: 'upbit', preferImport: true });
  t.same(figures(prefer)['KRW-BTC 1H'], '+0 =46 !2 import');
  t.same(rows(await read(dataRoot, 'KRW-BTC', '1H')), rows(btc1h), '--prefer-import: the old values replace the stored ones');
  t.same(figures(await importLegacyParquet({ dir, dataRoot, exchange: 'upbit', preferImport: true }))['KRW-BTC 1H'], '+0 =48 !0');

  t.same(await treeHashes(dir), sourcesBefore, 'the source files are unchanged');
  const left = (await readdir(dataRoot, { recursive: true })).filter((f) => /\.(lock|tmp)$/.test(f));
  t.same(left, [], 'no lock or temp file is left');
});

t.test('a Wombat data folder under the old one is not imported into itself', async (t) => {
  const root = await tempDataRoot(t);
  await writeOld(path.join(root, 'KRW-BTC/1H/2025.parquet'), { timestamp: timestamps(new arrow.TimestampMillisecond('UTC'), ms(btc1h)), ...ohlcv(btc1h) });
  const r = await importLegacyParquet({ dir: root, dataRoot: root, exchange: 'upbit' });
  t.same(figures(r), { 'KRW-BTC 1H': '+48 =0 !0' });
  const again = await importLegacyParquet({ dir: root, dataRoot: root, exchange: 'upbit' });
  t.same(again.files.map((f) => f.file), ['KRW-BTC/1H/2025.parquet'], 'upbit/KRW-BTC/1H/2025.parquet is Wombat’s own');
  t.same(figures(again), { 'KRW-BTC 1H': '+0 =48 !0' });
});

t.test('refuses a file over the size limit and saying so', async (t) => {
  const root = await tempDataRoot(t);
  const dir = path.join(root, 'old');
  await writeOld(path.join(dir, 'KRW-BTC/1H/2025.parquet'), { timestamp: timestamps(new arrow.TimestampMillisecond('UTC'), ms(btc1h)), ...ohlcv(btc1h) });
  const r = await importLegacyParquet({ dir, dataRoot: path.join(root, 'data'), exchange: 'upbit', maxFileBytes: 1024 });
  t.match(r.files[0]?.refused, /larger than the .* an import reads/);
  t.equal(r.series.length, 0);
});

t.test('reads times in local offsets and refuses candles off their timeframe', async (t) => {
  const root = await tempDataRoot(t);
  const dir = path.join(root, 'old');
  const day = candles(Date.UTC(2025, 0, 1), D, 3);
  const text = (list: string[]) => arrow.vectorFromArray(list, new arrow.Utf8());
  await writeOld(path.join(dir, 'KRW-BTC/1D/2025.parquet'), { datetime: text(['2025-01-01T09:00:00+09:00', '2025-01-02 00:00:00Z', '2025-01-03']), ...ohlcv(day) });
  await writeOld(path.join(dir, 'KRW-ETH/1D/2025.parquet'), { date: text(['2025-01-01T09:00:00', '2025-01-02T09:00:00', '2025-01-03T09:00:00']), ...ohlcv(day) });
  const dataRoot = path.join(root, 'data');
  const r = await importLegacyParquet({ dir, dataRoot, exchange: 'upbit' });
  t.same(figures(r), { 'KRW-BTC 1D': '+3 =0 !0' });
  t.match(r.files.find((f) => f.market === 'KRW-ETH')?.refused, /not at the start of a 1D candle in UTC/);
  t.same(rows(await read(dataRoot, 'KRW-BTC', '1D')), rows(day.map((c) => ({ ...c, quoteVolume: 0 }))));
});

t.test('two old folders of one series (1h and 1H): a dry run reports what the import then does', async (t) => {
  const root = await tempDataRoot(t);
  const dir = path.join(root, 'old');
  const a = btc1h.slice(0, 30);
  const b = [...btc1h.slice(20, 28).map((c) => ({ ...c, close: c.close - 0.5 })), ...btc1h.slice(28, 40)];
  const withQuote = (list: Candle[]) => ({ timestamp: timestamps(new arrow.TimestampMillisecond('UTC'), ms(list)), ...ohlcv(list), quote_volume: f64(list, 'quoteVolume') });
  await writeOld(path.join(dir, 'KRW-BTC/1H/2025.parquet'), withQuote(a));
  await writeOld(path.join(dir, 'KRW-BTC/1h/2025.parquet'), withQuote(b));
  const dataRoot = path.join(root, 'data');
  const dry = await importLegacyParquet({ dir, dataRoot, exchange: 'upbit', dryRun: true });
  t.same(figures(dry), { 'KRW-BTC 1H': '+40 =2 !8 stored' });
  t.same(figures(await importLegacyParquet({ dir, dataRoot, exchange: 'upbit' })), figures(dry));
  t.same(rows(await read(dataRoot, 'KRW-BTC', '1H')), rows(btc1h.slice(0, 40)), 'the first folder read (1H) wins over the second');
});

t.test('--prefer-import keeps the stored quote volume when the old file has none', async (t) => {
  const root = await tempDataRoot(t);
  const dir = path.join(root, 'old');
  const dataRoot = path.join(root, 'data');
  const key = { exchange: 'upbit' as const, symbol: 'KRW-BTC', timeframe: '1H' as const };
  await writeCandlesParquet(dataRoot, key, btc1h.slice(0, 4).map((c) => ({ ...c, close: c.close + 0.5 })), { overwrite: false });
  await writeOld(path.join(dir, 'KRW-BTC/1H/2025.parquet'), { timestamp: timestamps(new arrow.TimestampMillisecond('UTC'), ms(btc1h.slice(0, 6))), ...ohlcv(btc1h.slice(0, 6)) });
  const r = await importLegacyParquet({ dir, dataRoot, exchange: 'upbit', preferImport: true });
  t.same(figures(r), { 'KRW-BTC 1H': '+2 =0 !4 import' });
  t.equal(r.series[0]?.noQuoteVolume, true);
  t.same(rows(await read(dataRoot, 'KRW-BTC', '1H')), rows([...btc1h.slice(0, 4), ...btc1h.slice(4, 6).map((c) => ({ ...c, quoteVolume: 0 }))]));
});

t.test('waits for the file lock a collector holds', async (t) => {
  const root = await tempDataRoot(t);
  const dir = path.join(root, 'old');
  const dataRoot = path.join(root, 'data');
  const key = { exchange: 'upbit' as const, symbol: 'KRW-BTC', timeframe: '1H' as const };
  await writeOld(path.join(dir, 'KRW-BTC/1H/2025.parquet'), { timestamp: timestamps(new arrow.TimestampMillisecond('UTC'), ms(btc1h)), ...ohlcv(btc1h), quote_volume: f64(btc1h, 'quoteVolume') });
  const target = parquetPath(dataRoot, key, 2025);
  await mkdir(path.dirname(target), { recursive: true });
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let locked!: () => void;
  const isLocked = new Promise<void>((resolve) => (locked = resolve));
  const holder = withFileLock(target, async () => {
    locked();
    await held;
  });
  await isLocked;
  let finished = false;
  const importing = importLegacyParquet({ dir, dataRoot, exchange: 'upbit' }).then((r) => ((finished = true), r));
  await new Promise((resolve) => setTimeout(resolve, 500));
  t.equal(finished, false, 'the import waits while the lock is held');
  t.equal(existsSync(target), false);
  release();
  await holder;
  t.same(figures(await importing), { 'KRW-BTC 1H': '+48 =0 !0' });
  t.same(rows(await read(dataRoot, 'KRW-BTC', '1H')), rows(btc1h));
});

t.test('an aborted import stops before the next file', async (t) => {
  const root = await tempDataRoot(t);
  const dir = path.join(root, 'old');
  await writeOld(path.join(dir, 'KRW-BTC/1H/2025.parquet'), { timestamp: timestamps(new arrow.TimestampMillisecond('UTC'), ms(btc1h)), ...ohlcv(btc1h) });
  const ac = new AbortController();
  ac.abort();
  await t.rejects(importLegacyParquet({ dir, dataRoot: path.join(root, 'data'), exchange: 'upbit', signal: ac.signal }), { name: 'AbortError' });
  t.equal(existsSync(path.join(root, 'data')), false);
});

t.test('imports a whole year of 1m candles', async (t) => {
  const root = await tempDataRoot(t);
  const dir = path.join(root, 'old');
  const dataRoot = path.join(root, 'data');
  const n = 525_600;
  const start = Date.UTC(2025, 0, 1);
  const f = (v: (i: number) => number) => arrow.makeVector(Float64Array.from({ length: n }, (_, i) => v(i)));
  await writeOld(path.join(dir, 'KRW-BTC/1m/2025.parquet'), {
    timestamp: arrow.makeVector(BigInt64Array.from({ length: n }, (_, i) => BigInt(start + i * 60_000))),
    open: f((i) => 1000 + (i % 97)),
    high: f((i) => 1010 + (i % 97)),
    low: f((i) => 990 + (i % 97)),
    close: f((i) => 1005 + (i % 97)),
    volume: f((i) => i / 4),
  });
  const r = await importLegacyParquet({ dir, dataRoot, exchange: 'upbit' });
  t.same(figures(r), { 'KRW-BTC 1m': `+${n} =0 !0` });
  const back = await read(dataRoot, 'KRW-BTC', '1m');
  t.equal(back.length, n);
  t.same(rows([back[0]!, back[n - 1]!]), [`2025-01-01T00:00:00.000Z 1000 1010 990 1005 0 0`, `2025-12-31T23:59:00.000Z ${1000 + ((n - 1) % 97)} ${1010 + ((n - 1) % 97)} ${990 + ((n - 1) % 97)} ${1005 + ((n - 1) % 97)} ${(n - 1) / 4} 0`]);
  t.same(figures(await importLegacyParquet({ dir, dataRoot, exchange: 'upbit', dryRun: true })), { 'KRW-BTC 1m': `+0 =${n} !0` });
});
