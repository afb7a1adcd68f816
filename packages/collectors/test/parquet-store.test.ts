import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { mergeColumns, parquetPath, readColumns, writeCandlesParquet, type Candle, type Columns } from '@wombat/collectors';
import { tempDataRoot } from './helpers.ts';

// Real processes rewriting a 200,000-row file with fsyncs: slow on a busy machine. Never a timing assertion.
t.setTimeout(600_000);

const writer = path.join(import.meta.dirname, 'fixtures', 'parquet-writer.ts');
const key = { exchange: 'upbit' as const, symbol: 'KRW-BTC', timeframe: '1m' as const };
const base = Date.UTC(2026, 0, 1);
const candle = (i: number, v: number): Candle => ({ time: new Date(base + i * 60_000), open: v, high: v + 1, low: v - 1, close: v, volume: i, quoteVolume: v * i });

function cols(times: number[], v: number): Columns {
  const f = (x: number) => Float64Array.from(times, () => x);
  return { time: Float64Array.from(times), open: f(v), high: f(v), low: f(v), close: f(v), volume: f(v), quoteVolume: f(v) };
}

function isSortedUnique(c: Columns): boolean {
  for (let i = 1; i < c.time.length; i++) if (!(c.time[i]! > c.time[i - 1]!)) return false;
  return true;
}

t.test('merging keeps stored rows unless overwriting, and overwrite drops rows of the range the exchange lacks', async (t) => {
  const stored = cols([1, 3, 5, 7], 1);
  const incoming = cols([3, 4, 5], 2);
  const keep = mergeColumns(stored, incoming, { overwrite: false });
  t.same([...keep.merged.time], [1, 3, 4, 5, 7]);
  t.same([...keep.merged.close], [1, 1, 2, 1, 1]);
  t.equal(keep.written, 1);
  const replace = mergeColumns(stored, incoming, { overwrite: true, rangeFrom: 2, rangeTo: 7 });
  t.same([...replace.merged.time], [1, 3, 4, 5, 7], 'row 7 lies outside the range and stays');
  t.same([...replace.merged.close], [1, 2, 2, 2, 1]);
  t.equal(replace.written, 3);
  const drop = mergeColumns(cols([1, 2, 3], 1), cols([3], 1), { overwrite: true, rangeFrom: 2, rangeTo: 4 });
  t.same([...drop.merged.time], [1, 3]);
  t.equal(drop.removed, 1);
});

t.test('candles of different years go to their own files', async (t) => {
  const dataRoot = await tempDataRoot(t);
  const list = [{ ...candle(0, 1), time: new Date('2025-12-31T23:59:00Z') }, candle(0, 2)];
  const r = await writeCandlesParquet(dataRoot, key, list, { overwrite: false });
  t.equal(r.written, 2);
  t.equal((await readColumns(parquetPath(dataRoot, key, 2025)))!.time.length, 1);
  t.equal((await readColumns(parquetPath(dataRoot, key, 2026)))!.time.length, 1);
});

function run(args: string[], databaseUrl?: string): { done: Promise<number | null>; child: ReturnType<typeof spawn>; lines: string[] } {
  const env: Record<string, string> = { PATH: process.env.PATH ?? '' };
  if (databaseUrl) env.DATABASE_URL = databaseUrl;
  const child = spawn(process.execPath, [writer, ...args], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  child.stdout!.setEncoding('utf8').on('data', (s: string) => lines.push(...s.split('\n').filter(Boolean)));
  const done = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { done, child, lines };
}

t.test('two processes merging into the same file concurrently lose no rows', async (t) => {
  const dataRoot = await tempDataRoot(t);
  const a = run([dataRoot, 'interleave', '0', '2000', '20']);
  const b = run([dataRoot, 'interleave', '1', '2000', '20']);
  t.same(await Promise.all([a.done, b.done]), [0, 0], 'both writers finish');
  const c = (await readColumns(parquetPath(dataRoot, key, 2026)))!;
  t.equal(c.time.length, 4000, 'every row of both writers is there');
  t.ok(isSortedUnique(c), 'sorted, one row per candle');
  t.equal(c.time[3999], base + 3999 * 60_000);
  const leftovers = (await readdir(path.dirname(parquetPath(dataRoot, key, 2026)))).filter((f) => f !== '2026.parquet');
  t.same(leftovers, [], 'no lock or temp file is left');
});

t.test('a writer killed mid-write leaves the previous file intact, and its lock is recovered', async (t) => {
  const dataRoot = await tempDataRoot(t);
  const rows = 200_000;
  const first: Candle[] = [];
  for (let i = 0; i < rows; i++) first.push(candle(i, 7));
  await writeCandlesParquet(dataRoot, key, first, { overwrite: false });
  const file = parquetPath(dataRoot, key, 2026);
  const w = run([dataRoot, 'big', '0', String(rows), '0']);
  // Wait until the second rewrite has started: the file then holds round 1 and round 2 is in progress.
  while (!w.lines.includes('writing 2')) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 150));
  w.child.kill('SIGKILL');
  await w.done;
  const c = (await readColumns(file))!;
  t.equal(c.time.length, rows, 'the file decodes with every row');
  t.ok(isSortedUnique(c));
  t.ok([7, 1001, 1002].includes(c.close[0]!), `the file is one whole version (close ${c.close[0]})`);
  t.ok(c.close.every((v) => v === c.close[0]), 'no rows from two versions');
  // The killed writer may have left its lock (if not, leave one as it would have): the next writer breaks it
  // once it has not been refreshed for staleMs, whatever the pid.
  if (!existsSync(`${file}.lock`)) {
    await mkdir(`${file}.lock`);
    await writeFile(`${file}.lock/owner`, JSON.stringify({ id: 'dead', pid: w.child.pid, host: hostname() }));
  }
  const r = await writeCandlesParquet(dataRoot, key, [candle(rows, 9)], { overwrite: false, lock: { timeoutMs: 60_000 } });
  t.equal(r.written, 1, 'the lock of a dead process on this host is broken');
  t.notOk(existsSync(`${file}.lock`));
  const leftovers = (await readdir(path.dirname(file))).filter((f) => f !== '2026.parquet');
  t.same(leftovers, [], 'the dead writer\'s temp file is cleaned up');
});

t.test('a lock of another host is broken only once its holder stopped refreshing it', async (t) => {
  const dataRoot = await tempDataRoot(t);
  const file = parquetPath(dataRoot, key, 2026);
  await mkdir(`${file}.lock`, { recursive: true });
  await writeFile(`${file}.lock/owner`, JSON.stringify({ id: 'remote', pid: 1, host: 'another-host' }));
  const err = await writeCandlesParquet(dataRoot, key, [candle(1, 1)], { overwrite: false, lock: { timeoutMs: 500, staleMs: 60_000 } }).catch((e: unknown) => e);
  t.match(err, { code: 'lock_timeout', message: /is held and refreshed by another process/ }, 'a fresh lock is respected');
  const old = new Date(Date.now() - 120_000);
  await utimes(`${file}.lock`, old, old);
  const r = await writeCandlesParquet(dataRoot, key, [candle(1, 1)], { overwrite: false, lock: { timeoutMs: 30_000, staleMs: 60_000 } });
  t.equal(r.written, 1, 'a lock not refreshed for staleMs is broken');
  t.notOk(existsSync(`${file}.lock`));
});
