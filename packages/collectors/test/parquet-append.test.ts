import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as arrow from 'apache-arrow';
import * as pq from 'parquet-wasm';
import { parquetMetadata, parquetReadObjects, readColumnIndex, readOffsetIndex } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { APPEND_MIN_ROWS, appendParquet, decodeParquet, emptyColumns, encodeParquet, footerLastTime, lastStoredParquet, MAX_ROW_GROUPS, parquetPath, readColumns, writeCandlesParquet, type Candle, type Columns } from '@wombat/collectors';
import { readStruct, ThriftType as T, writeStruct, type ThriftStruct } from '../src/parquet-thrift.ts';
import { tempDataRoot } from './helpers.ts';

// Real files of ~100,000 rows and a killed writer process. Never a timing assertion.
t.setTimeout(600_000);

const key = { exchange: 'upbit' as const, symbol: 'KRW-BTC', timeframe: '1m' as const };
const base = Date.UTC(2026, 0, 1);
const STORED = 100_000;
const DAY = 1440;
const candle = (i: number, v: number): Candle => ({ time: new Date(base + i * 60_000), open: v, high: v + 1, low: v - 1, close: v + 0.5, volume: i, quoteVolume: v * i });
const candles = (from: number, n: number, v: (i: number) => number): Candle[] => Array.from({ length: n }, (_, k) => candle(from + k, v(from + k)));

function columnsOf(list: Candle[]): Columns {
  const c = emptyColumns(list.length);
  list.forEach((k, i) => {
    c.time[i] = k.time.getTime();
    c.open[i] = k.open;
    c.high[i] = k.high;
    c.low[i] = k.low;
    c.close[i] = k.close;
    c.volume[i] = k.volume;
    c.quoteVolume[i] = k.quoteVolume;
  });
  return c;
}

const plain = (c: Columns) => Object.fromEntries(Object.entries(c).map(([k, v]) => [k, [...(v as Float64Array)]]));
const arrowTable = (bytes: Uint8Array) => arrow.tableFromIPC(pq.readParquet(bytes).intoIPCStream());
const rowGroupCount = (bytes: Uint8Array) => parquetMetadata(bytes).row_groups.length;

function isSortedUnique(c: Columns): boolean {
  for (let i = 1; i < c.time.length; i++) if (!(c.time[i]! > c.time[i - 1]!)) return false;
  return true;
}

/** Every column chunk's page index, read by hyparquet, points at that chunk's own pages. */
function checkPageIndexes(t: Test, bytes: Uint8Array) {
  const meta = parquetMetadata(bytes);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let checked = 0;
  meta.row_groups.forEach((rg, g) => {
    rg.columns.forEach((chunk, c) => {
      const md = chunk.meta_data!;
      const offsets = readOffsetIndex({ view, offset: Number(chunk.offset_index_offset) });
      const chunkStart = Number(md.dictionary_page_offset ?? md.data_page_offset);
      const pages = offsets.page_locations;
      if (Number(pages[0]!.offset) !== Number(md.data_page_offset) || Number(pages.at(-1)!.offset) >= chunkStart + Number(md.total_compressed_size)) {
        t.fail(`row group ${g} column ${c}: offset index does not point into its chunk`);
      }
      const index = readColumnIndex({ view, offset: Number(chunk.column_index_offset) }, meta.schema[c + 1]!);
      if (index.max_values.length !== pages.length) t.fail(`row group ${g} column ${c}: column index has ${index.max_values.length} pages, offset index ${pages.length}`);
      checked++;
    });
  });
  t.equal(checked, meta.row_groups.length * 7, 'every column chunk has a page index that points into its pages');
}

t.test('a day after the file\'s end is appended as new row groups, and the file reads as a full rewrite of the same rows', async (t) => {
  const dataRoot = await tempDataRoot(t);
  const file = parquetPath(dataRoot, key, 2026);
  const stored = candles(0, STORED, (i) => 100 + (i % 97));
  await writeCandlesParquet(dataRoot, key, stored, { overwrite: false });
  const before = await readFile(file);
  t.equal(rowGroupCount(before), 1);
  const day1 = candles(STORED, DAY, () => 7);
  const day2 = candles(STORED + DAY, DAY, () => 8);
  t.equal((await writeCandlesParquet(dataRoot, key, day1, { overwrite: false })).written, DAY);
  t.equal((await writeCandlesParquet(dataRoot, key, day2, { overwrite: false })).written, DAY);
  const after = await readFile(file);
  t.equal(rowGroupCount(after), 3, 'one row group per appended day');
  const storedEnd = before.length - 8 - before.readUInt32LE(before.length - 8);
  t.ok(after.subarray(0, storedEnd).equals(before.subarray(0, storedEnd)), 'the stored row groups and page indexes are kept byte for byte');

  const all = [...stored, ...day1, ...day2];
  const full = encodeParquet(columnsOf(all));
  t.same(plain(decodeParquet(after)), plain(decodeParquet(full)), 'parquet-wasm: the same rows as a full rewrite');

  const a = arrowTable(after);
  const f = arrowTable(full);
  t.equal(a.numRows, all.length);
  t.same(a.schema.fields.map((x) => `${x.name}:${x.type}:${x.nullable}`), f.schema.fields.map((x) => `${x.name}:${x.type}:${x.nullable}`), 'apache-arrow: the same schema');
  t.same([...a.schema.metadata], [...f.schema.metadata]);
  for (const name of f.schema.names) t.same([...a.getChild(name)!.toArray()], [...f.getChild(name)!.toArray()], `apache-arrow: column ${String(name)} equal`);

  const lastGroup = arrow.tableFromIPC(pq.readParquet(after, { rowGroups: [2] }).intoIPCStream());
  t.same([...lastGroup.getChild('close')!.toArray()], day2.map((k) => k.close), 'the last row group holds the second day');

  const rows = await parquetReadObjects({ file: after.buffer.slice(after.byteOffset, after.byteOffset + after.byteLength), compressors });
  t.equal(rows.length, all.length, 'hyparquet reads every row');
  const mismatch = rows.findIndex((r, i) => {
    const k = all[i]!;
    return new Date(r.time as Date | number).getTime() !== k.time.getTime() || r.open !== k.open || r.close !== k.close || r.quote_volume !== k.quoteVolume;
  });
  t.equal(mismatch, -1, 'hyparquet: every row as written');
  t.equal(Number(parquetMetadata(after).num_rows), all.length);
  checkPageIndexes(t, after);

  const last = all.at(-1)!.time.getTime();
  t.equal(footerLastTime(after), last, 'the footer statistics give the last candle of an appended file');
  t.equal(footerLastTime(full), last, 'and of a file written whole');
  t.equal(footerLastTime(after.subarray(0, after.length - 3)), undefined, 'a truncated file has no footer to read');
  t.equal((await lastStoredParquet(dataRoot, key))?.getTime(), last, 'the newest stored candle, read from the footer');
  await writeFile(file, after.subarray(0, after.length - 3));
  await t.rejects(lastStoredParquet(dataRoot, key), 'a damaged year file is an error, not an empty series');
});

t.test('rows at or before the file\'s end are merged and the file rewritten: overlapping days de-duplicate', async (t) => {
  const dataRoot = await tempDataRoot(t);
  const file = parquetPath(dataRoot, key, 2026);
  await writeCandlesParquet(dataRoot, key, candles(0, STORED, () => 1), { overwrite: false });
  await writeCandlesParquet(dataRoot, key, candles(STORED, DAY, () => 2), { overwrite: false });
  t.equal(rowGroupCount(await readFile(file)), 2);
  // Half a day already stored, half new.
  const r = await writeCandlesParquet(dataRoot, key, candles(STORED + DAY / 2, DAY, () => 3), { overwrite: false });
  t.equal(r.written, DAY / 2, 'only the new half is written');
  const bytes = await readFile(file);
  t.equal(rowGroupCount(bytes), 1, 'rewritten whole, in one row group');
  const c = decodeParquet(bytes);
  t.equal(c.time.length, STORED + DAY + DAY / 2);
  t.ok(isSortedUnique(c), 'sorted, one row per candle');
  t.equal(c.open[STORED + DAY - 1], 2, 'a stored row wins over an incoming one without overwrite');
  t.equal(c.open[STORED + DAY], 3);
  // A single row equal to the file's last one is not appended again.
  t.equal((await writeCandlesParquet(dataRoot, key, [candle(STORED + DAY + DAY / 2 - 1, 9)], { overwrite: false })).written, 0);
  t.equal((await readColumns(file))!.time.length, STORED + DAY + DAY / 2);
});

t.test('an overwrite appends only when its range starts after the file\'s end', async (t) => {
  const dataRoot = await tempDataRoot(t);
  const file = parquetPath(dataRoot, key, 2026);
  await writeCandlesParquet(dataRoot, key, candles(0, STORED, () => 1), { overwrite: false });
  const at = (i: number) => base + i * 60_000;
  const r = await writeCandlesParquet(dataRoot, key, candles(STORED, DAY, () => 2), { overwrite: true, rangeFrom: at(STORED), rangeTo: at(STORED + DAY) });
  t.equal(r.written, DAY);
  t.equal(rowGroupCount(await readFile(file)), 2, 'appended');
  // This range reaches back into the file: the stored rows of the range that are not sent again go.
  const back = await writeCandlesParquet(dataRoot, key, candles(STORED + DAY, 10, () => 3), { overwrite: true, rangeFrom: at(STORED + DAY - 5), rangeTo: at(STORED + DAY + 10) });
  t.equal(back.written, 10);
  const c = (await readColumns(file))!;
  t.equal(c.time.length, STORED + DAY - 5 + 10, 'the last 5 stored rows of the range are dropped');
  t.ok(isSortedUnique(c));
  t.equal(rowGroupCount(await readFile(file)), 1, 'rewritten whole');
});

t.test('small files, and files that reached MAX_ROW_GROUPS row groups, are rewritten whole', async (t) => {
  const small = encodeParquet(columnsOf(candles(0, APPEND_MIN_ROWS - 1, () => 1)));
  t.equal(appendParquet(small, columnsOf(candles(APPEND_MIN_ROWS, 10, () => 1)), { overwrite: false }), undefined, 'below APPEND_MIN_ROWS: no append');

  let bytes: Uint8Array = encodeParquet(columnsOf(candles(0, APPEND_MIN_ROWS, () => 1)));
  let next = APPEND_MIN_ROWS;
  while (rowGroupCount(bytes) < MAX_ROW_GROUPS) {
    const r = appendParquet(bytes, columnsOf(candles(next, 10, (i) => i)), { overwrite: false });
    if (!r) return t.fail(`no append at ${rowGroupCount(bytes)} row groups`);
    t.equal(r.written, 10);
    bytes = r.bytes;
    next += 10;
  }
  t.same(plain(decodeParquet(bytes)), plain(columnsOf(candles(0, APPEND_MIN_ROWS, () => 1).concat(candles(APPEND_MIN_ROWS, next - APPEND_MIN_ROWS, (i) => i)))), `${MAX_ROW_GROUPS} row groups read back whole`);
  t.equal(appendParquet(bytes, columnsOf(candles(next, 10, () => 1)), { overwrite: false }), undefined, 'at MAX_ROW_GROUPS: no append');

  const dataRoot = await tempDataRoot(t);
  const file = parquetPath(dataRoot, key, 2026);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, bytes);
  t.equal((await writeCandlesParquet(dataRoot, key, candles(next, 10, () => 1), { overwrite: false })).written, 10);
  const compacted = await readFile(file);
  t.equal(rowGroupCount(compacted), 1, 'the next write packs the file into full row groups again');
  t.equal(decodeParquet(compacted).time.length, next + 10);
});

t.test('the footer codec writes back exactly what it read, fields it does not know included', async (t) => {
  const file = encodeParquet(columnsOf(candles(0, 1000, () => 1)));
  const buf = Buffer.from(file);
  const len = buf.readUInt32LE(buf.length - 8);
  const footer = buf.subarray(buf.length - 8 - len, buf.length - 8);
  t.same(Buffer.compare(writeStruct(readStruct(footer)), footer), 0, 'a footer of parquet-wasm round-trips byte for byte');

  // {1: i32 1} in the compact protocol: field header (delta 1, type i32 = 5), zigzag varint 2, stop.
  t.same([...writeStruct({ fields: [{ id: 1, type: T.I32, value: 1 }] })], [0x15, 0x02, 0x00]);
  const every: ThriftStruct = {
    fields: [
      { id: 1, type: T.BOOL, value: true },
      { id: 2, type: T.BYTE, value: -3 },
      { id: 3, type: T.I16, value: -300 },
      { id: 4, type: T.I32, value: 2 ** 31 - 1 },
      { id: 5, type: T.I64, value: -(2n ** 62n) },
      { id: 6, type: T.DOUBLE, value: 1.5e-300 },
      { id: 7, type: T.STRING, value: Buffer.from([0, 255, 1]) },
      { id: 40, type: T.LIST, value: { elemType: T.BOOL, set: false, items: [1, 2, 1] } },
      { id: 41, type: T.SET, value: { elemType: T.I64, set: true, items: Array.from({ length: 20 }, (_, i) => BigInt(i) * 2n ** 40n) } },
      { id: 300, type: T.MAP, value: { keyType: T.STRING, valueType: T.STRUCT, entries: [[Buffer.from('k'), { fields: [{ id: 2, type: T.BOOL, value: false }] }]] } },
    ],
  };
  const bytes = writeStruct(every);
  t.same(readStruct(bytes), every, 'every wire type reads back as written');
  t.same(Buffer.compare(writeStruct(readStruct(bytes)), bytes), 0);
  t.throws(() => readStruct(Buffer.concat([bytes, Buffer.from([0])])), /ends at byte/, 'trailing bytes are an error');
});

t.test('a writer killed while appending leaves a whole file behind', async (t) => {
  const dataRoot = await tempDataRoot(t);
  const file = parquetPath(dataRoot, key, 2026);
  await writeCandlesParquet(dataRoot, key, candles(0, STORED, () => 100), { overwrite: false });
  const child = spawn(process.execPath, [path.join(import.meta.dirname, 'fixtures', 'parquet-writer.ts'), dataRoot, 'append', String(STORED), String(DAY), '0'], { env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'inherit'] });
  const done = new Promise((resolve) => child.on('exit', resolve));
  const lines: string[] = [];
  child.stdout.setEncoding('utf8').on('data', (s: string) => lines.push(...s.split('\n').filter(Boolean)));
  while (!lines.includes('writing 4')) await new Promise((r) => setTimeout(r, 2));
  await new Promise((r) => setTimeout(r, Math.random() * 20));
  child.kill('SIGKILL');
  await done;
  const c = (await readColumns(file))!;
  const days = (c.time.length - STORED) / DAY;
  t.ok(Number.isInteger(days) && days >= 3, `the file holds the stored rows and whole days only (${days} days)`);
  t.ok(isSortedUnique(c));
  for (let d = 0; d < days; d++) t.equal(c.close[STORED + d * DAY], 100 + d + 1, `day ${d + 1} as written`);
  const r = await writeCandlesParquet(dataRoot, key, candles(STORED + days * DAY, 1, () => 1), { overwrite: false, lock: { timeoutMs: 60_000 } });
  t.equal(r.written, 1, 'the next writer appends after it');
});
