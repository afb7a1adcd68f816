import * as arrow from 'apache-arrow';
import * as pq from 'parquet-wasm';
import type { Candle } from './candle.ts';

/**
 * Candles as columns (one Float64Array per field, time in epoch ms), their
 * Parquet encoding, and the sorted merge a write performs. Pure: no files.
 */
/** Column-wise candles, sorted by time; time is epoch ms. */
export interface Columns {
  time: Float64Array;
  open: Float64Array;
  high: Float64Array;
  low: Float64Array;
  close: Float64Array;
  volume: Float64Array;
  quoteVolume: Float64Array;
}

const VALUE_COLS = ['open', 'high', 'low', 'close', 'volume', 'quoteVolume'] as const;
const FILE_COLS: Record<(typeof VALUE_COLS)[number], string> = {
  open: 'open',
  high: 'high',
  low: 'low',
  close: 'close',
  volume: 'volume',
  quoteVolume: 'quote_volume',
};

export function emptyColumns(n = 0): Columns {
  return { time: new Float64Array(n), open: new Float64Array(n), high: new Float64Array(n), low: new Float64Array(n), close: new Float64Array(n), volume: new Float64Array(n), quoteVolume: new Float64Array(n) };
}

export function columnsFromCandles(candles: Candle[]): Columns {
  const sorted = [...candles].sort((a, b) => a.time.getTime() - b.time.getTime());
  const c = emptyColumns(sorted.length);
  sorted.forEach((k, i) => {
    c.time[i] = k.time.getTime();
    for (const col of VALUE_COLS) c[col][i] = k[col];
  });
  return c;
}

export function candlesFromColumns(c: Columns, from = -Infinity, to = Infinity): Candle[] {
  const out: Candle[] = [];
  for (let i = 0; i < c.time.length; i++) {
    const t = c.time[i]!;
    if (t < from || t >= to) continue;
    out.push({ time: new Date(t), open: c.open[i]!, high: c.high[i]!, low: c.low[i]!, close: c.close[i]!, volume: c.volume[i]!, quoteVolume: c.quoteVolume[i]! });
  }
  return out;
}

export function encodeParquet(c: Columns): Uint8Array {
  const times = new BigInt64Array(c.time.length);
  const halves = new Uint32Array(times.buffer);
  for (let i = 0; i < c.time.length; i++) {
    const ms = c.time[i]!;
    if (!(ms >= 0 && Number.isInteger(ms))) throw new RangeError(`candle time ${ms} is not a whole number of ms after 1970`);
    halves[2 * i] = ms % 4294967296;
    halves[2 * i + 1] = Math.floor(ms / 4294967296);
  }
  const vectors: Record<string, arrow.Vector> = {
    time: arrow.makeVector({ type: new arrow.TimestampMillisecond('UTC'), data: times } as never),
  };
  for (const col of VALUE_COLS) vectors[FILE_COLS[col]] = arrow.makeVector(c[col]);
  const table = new arrow.Table(vectors);
  const props = new pq.WriterPropertiesBuilder().setCompression(pq.Compression.ZSTD).setMaxRowGroupSize(256 * 1024).build();
  const wasmTable = pq.Table.fromIPCStream(arrow.tableToIPC(table, 'stream'));
  return pq.writeParquet(wasmTable, props);
}

export function decodeParquet(bytes: Uint8Array, file = 'parquet file'): Columns {
  // Large batches: the reader's default (1,024 rows) makes a million-row file ~1,000 Arrow batches.
  const table = arrow.tableFromIPC(pq.readParquet(bytes, { batchSize: 256 * 1024 }).intoIPCStream());
  if (!table.getChild('time')) throw new Error(`${file} has no time column`);
  for (const col of VALUE_COLS) if (!table.getChild(FILE_COLS[col])) throw new Error(`${file} has no ${FILE_COLS[col]} column`);
  const c = emptyColumns(table.numRows);
  // Batch by batch, straight into the columns: Vector.toArray() of a multi-batch column
  // first concatenates a copy of it, a third of the decode time on a million rows.
  let at = 0;
  for (const batch of table.batches) {
    for (const chunk of batch.getChild('time')!.data) {
      const raw = chunk.values as BigInt64Array | Float64Array;
      const n = chunk.length;
      if (raw instanceof BigInt64Array) {
        // Epoch ms are positive and below 2^53: read each int64 as two uint32 halves (little-endian),
        // far faster than a BigInt conversion per row.
        const halves = new Uint32Array(raw.buffer, raw.byteOffset, n * 2);
        for (let i = 0; i < n; i++) c.time[at + i] = halves[2 * i + 1]! * 4294967296 + halves[2 * i]!;
      } else {
        c.time.set(raw.subarray(0, n), at);
      }
      at += n;
    }
    for (const col of VALUE_COLS) {
      let colAt = at - batch.numRows;
      for (const chunk of batch.getChild(FILE_COLS[col])!.data) {
        // A chunk's values start at its first row (arrow slices the buffer, as toArray() relies on).
        c[col].set((chunk.values as Float64Array).subarray(0, chunk.length), colAt);
        colAt += chunk.length;
      }
    }
  }
  return c;
}

export interface MergeResult {
  merged: Columns;
  /** Rows inserted or whose values changed. */
  written: number;
  /** Rows of the stored file dropped by an overwrite of their range. */
  removed: number;
}

/**
 * Merges sorted `incoming` into sorted `stored`. Without overwrite a stored row
 * wins; with overwrite, stored rows whose time lies in [rangeFrom, rangeTo) are
 * replaced by the incoming ones (and dropped if the exchange no longer has them).
 */
export function mergeColumns(stored: Columns, incoming: Columns, opts: { overwrite: boolean; rangeFrom?: number; rangeTo?: number }): MergeResult {
  const from = opts.rangeFrom ?? -Infinity;
  const to = opts.rangeTo ?? Infinity;
  const S = stored.time.length;
  const I = incoming.time.length;
  const out = emptyColumns(S + I);
  let n = 0;
  let written = 0;
  let removed = 0;
  // Runs are copied with TypedArray.set: an incremental merge into a million rows is two bulk copies.
  const copyRun = (src: Columns, a: number, b: number) => {
    if (b <= a) return;
    out.time.set(src.time.subarray(a, b), n);
    for (const col of VALUE_COLS) out[col].set(src[col].subarray(a, b), n);
    n += b - a;
  };
  const copyOne = (src: Columns, k: number) => {
    out.time[n] = src.time[k]!;
    for (const col of VALUE_COLS) out[col][n] = src[col][k]!;
    n++;
  };
  const copyStored = (a: number, b: number) => {
    if (!opts.overwrite) return copyRun(stored, a, b);
    // An overwrite drops the stored rows of its range that the exchange did not return.
    const lo = lowerBound(stored.time, from, a, b);
    const hi = lowerBound(stored.time, to, lo, b);
    copyRun(stored, a, lo);
    removed += hi - lo;
    copyRun(stored, hi, b);
  };
  let i = 0;
  let j = 0;
  while (j < I) {
    const ti = incoming.time[j]!;
    const k = lowerBound(stored.time, ti, i, S);
    copyStored(i, k);
    i = k;
    if (i < S && stored.time[i] === ti) {
      if (opts.overwrite) {
        if (VALUE_COLS.some((col) => stored[col][i] !== incoming[col][j])) written++;
        copyOne(incoming, j);
      } else {
        copyOne(stored, i);
      }
      i++;
      j++;
    } else {
      const m = lowerBound(incoming.time, i < S ? stored.time[i]! : Infinity, j, I);
      copyRun(incoming, j, m);
      written += m - j;
      j = m;
    }
  }
  copyStored(i, S);
  const merged = emptyColumns(0);
  for (const col of ['time', ...VALUE_COLS] as const) merged[col] = out[col].subarray(0, n);
  return { merged, written, removed };
}

/** First index in [lo, hi) whose value is >= x (values sorted ascending). */
function lowerBound(values: Float64Array, x: number, lo: number, hi: number): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (values[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

