import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { encodeParquet } from '../parquet-store.ts';

/**
 * A year file of the replaced pipeline's layout (`<MARKET>/<timeframe>/<year>.parquet`):
 * `n` hourly candles from 2025-01-01, close 101, 102, ..., volume 5.
 */
export async function writeLegacyHourlyFile(file: string, n: number, startMs = Date.UTC(2025, 0, 1)): Promise<void> {
  const f = (v: (i: number) => number) => Float64Array.from({ length: n }, (_, i) => v(i));
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, encodeParquet({ time: f((i) => startMs + i * 3_600_000), open: f((i) => 100 + i), high: f((i) => 102 + i), low: f((i) => 99 + i), close: f((i) => 101 + i), volume: f(() => 5), quoteVolume: f((i) => 500 + i) }));
}
