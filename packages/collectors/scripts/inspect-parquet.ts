/**
 * Describes candle files: schema, row count, time range, gaps, duplicates.
 *
 *   npx tsx packages/collectors/scripts/inspect-parquet.ts --path data/upbit/KRW-BTC/1H[/2026.parquet] [--verbose]
 *
 * A directory is searched for *.parquet files. Gaps (periods without a candle)
 * are normal where nothing traded and are reported, not failed. Exit code 1 when
 * a file cannot be read or has duplicate or unsorted rows.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { readSchema } from 'parquet-wasm';
import * as arrow from 'apache-arrow';
import type { Timeframe } from '@wombat/core/jobs';
import { addPeriods, decodeParquet, isTimeframe } from '@wombat/collectors';
import { usageError } from './script-support.ts';

const USAGE = 'usage: inspect-parquet --path <file or directory> [--verbose]';
let args;
try {
  args = parseArgs({ options: { path: { type: 'string' }, verbose: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } }, strict: true }).values;
} catch (err) {
  usageError((err as Error).message, USAGE);
}
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
if (!args.path) usageError('--path is required', USAGE);

async function parquetFiles(p: string): Promise<string[]> {
  const s = await stat(p);
  if (s.isFile()) return [p];
  const out: string[] = [];
  for (const entry of (await readdir(p, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const full = path.join(p, entry.name);
    if (entry.isDirectory()) out.push(...(await parquetFiles(full)));
    else if (entry.name.endsWith('.parquet')) out.push(full);
  }
  return out;
}

const iso = (ms: number) => new Date(ms).toISOString();

function inspect(file: string, bytes: Uint8Array, verbose: boolean): boolean {
  const schema = arrow.tableFromIPC(readSchema(bytes).intoIPCStream()).schema;
  const c = decodeParquet(bytes, file);
  const n = c.time.length;
  const tfDir = path.basename(path.dirname(file));
  const tf: Timeframe | undefined = isTimeframe(tfDir) ? tfDir : undefined;
  let duplicates = 0;
  let unsorted = 0;
  const gaps: [number, number, number][] = [];
  for (let i = 1; i < n; i++) {
    const prev = c.time[i - 1]!;
    const cur = c.time[i]!;
    if (cur === prev) duplicates++;
    else if (cur < prev) unsorted++;
    else if (tf) {
      let missing = 0;
      for (let s = addPeriods(tf, new Date(prev), 1).getTime(); s < cur && missing < 1e6; s = addPeriods(tf, new Date(s), 1).getTime()) missing++;
      if (missing > 0) gaps.push([prev, cur, missing]);
    }
  }
  const out = [
    `${file}`,
    `  schema: ${schema.fields.map((f) => `${f.name} ${String(f.type)}`).join(', ')}`,
    `  rows: ${n}`,
    n > 0 ? `  range: ${iso(c.time[0]!)} .. ${iso(c.time[n - 1]!)}` : '  range: (empty)',
    `  timeframe: ${tf ?? 'unknown (not under a timeframe directory): gaps not checked'}`,
    `  gaps: ${gaps.length} (${gaps.reduce((a, g) => a + g[2], 0)} missing candles)`,
    `  duplicates: ${duplicates}`,
    `  unsorted: ${unsorted}`,
  ];
  if (verbose) {
    for (const [a, b, m] of gaps.slice(0, 100)) out.push(`    gap after ${iso(a)}: next ${iso(b)} (${m} missing)`);
    if (gaps.length > 100) out.push(`    ... ${gaps.length - 100} more gaps`);
    for (const i of [0, 1, 2, n - 3, n - 2, n - 1].filter((i, k, all) => i >= 0 && i < n && all.indexOf(i) === k)) {
      out.push(`    row ${i}: ${iso(c.time[i]!)} o=${c.open[i]} h=${c.high[i]} l=${c.low[i]} c=${c.close[i]} v=${c.volume[i]} qv=${c.quoteVolume[i]}`);
    }
  }
  process.stdout.write(`${out.join('\n')}\n`);
  return duplicates === 0 && unsorted === 0;
}

let ok = true;
let files: string[];
try {
  files = await parquetFiles(path.resolve(args.path));
} catch (err) {
  process.stderr.write(`cannot read ${args.path}: ${(err as Error).message}\n`);
  process.exit(1);
}
if (files.length === 0) {
  process.stderr.write(`no .parquet files under ${args.path}\n`);
  process.exit(1);
}
for (const file of files) {
  try {
    if (!inspect(file, new Uint8Array(await readFile(file)), args.verbose)) ok = false;
  } catch (err) {
    ok = false;
    process.stdout.write(`${file}\n  unreadable: ${(err as Error).message}\n`);
  }
}
process.exit(ok ? 0 : 1);
