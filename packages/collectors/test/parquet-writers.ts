import type { Test } from 'tap';
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { parquetPath, readColumns, writeCandlesParquet, type Candle, type Columns } from '@wombat/collectors';
import { childEnv } from '@wombat/core/testing';
import { tempDataRoot } from './helpers.ts';

/**
 * The Parquet file lock cannot let two writers in: real processes merge
 * overlapping ranges into one year file at once, several rounds, and the file
 * ends with exactly the union of their rows. Used with the lock directory alone
 * (parquet-lock.test.ts) and with the PostgreSQL advisory lock (parquet-lock-pg.test.ts).
 */
const writer = path.join(import.meta.dirname, 'fixtures', 'parquet-writer.ts');
const key = { exchange: 'upbit' as const, symbol: 'KRW-BTC', timeframe: '1m' as const };
const base = Date.UTC(2026, 0, 1);

function isSortedUnique(c: Columns): boolean {
  for (let i = 1; i < c.time.length; i++) if (!(c.time[i]! > c.time[i - 1]!)) return false;
  return true;
}

function run(args: string[], databaseUrl?: string): { done: Promise<number | null> } {
  const env = childEnv();
  if (databaseUrl) env.DATABASE_URL = databaseUrl;
  const child = spawn(process.execPath, [writer, ...args], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  return { done: new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code))) };
}

// Four writers, overlapping ranges, several merges each, all into 2026.parquet at once.
const WRITERS: [first: number, count: number, batches: number, stride: number][] = [
  [0, 1500, 6, 3],
  [1, 1500, 6, 3],
  [0, 2000, 6, 2],
  [5, 900, 6, 5],
];

/**
 * Four writers, `rounds` times, each round in a fresh data root; with `databaseUrl` they lock through PostgreSQL too.
 * With `storedRows` the file first holds that many rows and the writers write after them, so that the writes
 * past the file's end append row groups and the others merge and rewrite it.
 */
export async function fourWriters(t: Test, rounds: number, databaseUrl?: string, storedRows = 0) {
  const union = new Set(Array.from({ length: storedRows }, (_, i) => base + i * 60_000));
  for (const [first, count, , stride] of WRITERS) for (let k = 0; k < count; k++) union.add(base + (storedRows + first + stride * k) * 60_000);
  for (let round = 1; round <= rounds; round++) {
    const dataRoot = await tempDataRoot(t);
    if (storedRows > 0) {
      const stored: Candle[] = Array.from({ length: storedRows }, (_, i) => ({ time: new Date(base + i * 60_000), open: 1, high: 1, low: 1, close: 1, volume: 1, quoteVolume: 1 }));
      await writeCandlesParquet(dataRoot, key, stored, { overwrite: false });
    }
    const writers = WRITERS.map(([first, count, batches, stride]) => run([dataRoot, 'range', String(storedRows + first), String(count), String(batches), String(stride)], databaseUrl));
    t.same(await Promise.all(writers.map((w) => w.done)), [0, 0, 0, 0], `round ${round}: every writer finishes`);
    const c = (await readColumns(parquetPath(dataRoot, key, 2026)))!;
    t.ok(isSortedUnique(c), `round ${round}: sorted, one row per candle`);
    t.same([...c.time], [...union].sort((a, b) => a - b), `round ${round}: exactly the union of the writers' rows (${union.size})`);
    const leftovers = (await readdir(path.dirname(parquetPath(dataRoot, key, 2026)))).filter((f) => f !== '2026.parquet');
    t.same(leftovers, [], `round ${round}: no lock or temp file is left`);
  }
}

