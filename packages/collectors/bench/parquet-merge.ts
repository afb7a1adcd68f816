/**
 * Parquet store throughput on a file of 1,000,000 candles: encode, decode, and
 * the writes a collection does under the lock: a day appended after the file's
 * end (the stored row groups copied, the day encoded alone) and a day overlapping
 * the end (read + merge + atomic rewrite). Ratios are against plain encode of the
 * million rows in the same round.
 *
 *   node bench/parquet-merge.ts
 * BENCH_ROWS (default 1000000) rows in the file; BENCH_ROUNDS (default 3) rounds.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { decodeParquet, encodeParquet, parquetPath, writeCandlesParquet, type Candle, type Columns } from '@wombat/collectors';
import { atomicWrite } from '../src/parquet-store.ts';

const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const dataRoot = await mkdtemp(path.join(tmpdir(), 'wombat-bench-'));
const key = { exchange: 'upbit' as const, symbol: 'KRW-BTC', timeframe: '1m' as const };
const base = Date.UTC(2026, 0, 1);
// 30 s apart so that a million rows fit one year file (a year of 1m candles is 525,600).
const STEP_MS = 30_000;

const time = (label: string, rows: number, ms: number) => console.log(`${label}: ${rows} rows in ${(ms / 1000).toFixed(2)} s = ${Math.round(rows / (ms / 1000))} rows/s`);

try {
  const c: Columns = { time: new Float64Array(ROWS), open: new Float64Array(ROWS), high: new Float64Array(ROWS), low: new Float64Array(ROWS), close: new Float64Array(ROWS), volume: new Float64Array(ROWS), quoteVolume: new Float64Array(ROWS) };
  for (let i = 0; i < ROWS; i++) {
    c.time[i] = base + i * STEP_MS;
    c.open[i] = 100 + (i % 97);
    c.high[i] = c.open[i]! + 2;
    c.low[i] = c.open[i]! - 2;
    c.close[i] = c.open[i]! + 1;
    c.volume[i] = i % 1000;
    c.quoteVolume[i] = c.volume[i]! * c.close[i]!;
  }
  // Warm-up: the first call instantiates and compiles the wasm module.
  encodeParquet({ ...c, time: c.time.subarray(0, 1000), open: c.open.subarray(0, 1000), high: c.high.subarray(0, 1000), low: c.low.subarray(0, 1000), close: c.close.subarray(0, 1000), volume: c.volume.subarray(0, 1000), quoteVolume: c.quoteVolume.subarray(0, 1000) });
  const file = parquetPath(dataRoot, key, 2026);
  const day = (first: number): Candle[] => Array.from({ length: 1440 }, (_, i) => ({ time: new Date(base + (first + i) * STEP_MS), open: 1, high: 2, low: 1, close: 1, volume: 1, quoteVolume: 1 }));
  // The daily collection: a day of 1,440 new rows after the million stored (appended as a row group).
  const fresh = day(ROWS);
  // A day overlapping the file's end: half already stored, half new (merged and the file rewritten).
  const overlapping = day(ROWS - 720);
  // Interleaved rounds (encode, decode, append, overlapping merge): the ratios of a round compare runs made moments apart.
  const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
  const ratios = { append: [] as number[], overlap: [] as number[] };
  let t0 = 0;
  for (let round = 1; round <= ROUNDS; round++) {
    t0 = performance.now();
    const bytes = encodeParquet(c);
    const encodeMs = performance.now() - t0;
    time(`round ${round}: encode (zstd)`, ROWS, encodeMs);
    await atomicWrite(file, bytes);
    if (round === 1) console.log(`file size: ${((await stat(file)).size / 1e6).toFixed(1)} MB`);
    t0 = performance.now();
    decodeParquet(bytes);
    time(`round ${round}: decode`, ROWS, performance.now() - t0);
    for (const [kind, rows, label] of [
      ['append', fresh, 'append of a day after the end (read + new row group + atomic write)'],
      ['overlap', overlapping, 'merge of a day overlapping the end (read + merge + atomic rewrite)'],
    ] as const) {
      await atomicWrite(file, bytes);
      t0 = performance.now();
      const r = await writeCandlesParquet(dataRoot, key, rows, { overwrite: false });
      const ms = performance.now() - t0;
      time(`round ${round}: ${label}, ${r.written} new rows`, ROWS + r.written, ms);
      ratios[kind].push((ROWS + r.written) / ms / (ROWS / encodeMs));
    }
  }
  const summary = (xs: number[]) => {
    const sorted = [...xs].sort((a, b) => a - b);
    return `median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(2)}, min-max ${sorted[0]!.toFixed(2)}-${sorted.at(-1)!.toFixed(2)} (rounds ${xs.map((x) => x.toFixed(2)).join(', ')})`;
  };
  console.log(`append rows/s / plain encode rows/s: ${summary(ratios.append)}; aim >= 0.9`);
  console.log(`overlapping merge rows/s / plain encode rows/s: ${summary(ratios.overlap)}`);

  // An overwrite of the whole range: every row replaced.
  const all: Candle[] = [];
  for (let i = 0; i < ROWS; i++) all.push({ time: new Date(base + i * STEP_MS), open: 5, high: 6, low: 4, close: 5, volume: 1, quoteVolume: 5 });
  t0 = performance.now();
  const o = await writeCandlesParquet(dataRoot, key, all, { overwrite: true, rangeFrom: base, rangeTo: base + ROWS * STEP_MS });
  time(`overwrite merge (${o.written} rows replaced)`, ROWS, performance.now() - t0);
} finally {
  await rm(dataRoot, { recursive: true, force: true });
}
