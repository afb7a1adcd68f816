import t from 'tap';
import { readFileSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readCandlesParquet } from '@wombat/collectors';
import { writeLegacyHourlyFile } from '@wombat/collectors/testing';
import { repoRoot } from '@wombat/core/platform';
import { tempDir, wombat } from './helpers.ts';

/**
 * `wombat import parquet`: a thin caller of the collectors' import (tested in
 * packages/collectors/test/import-parquet.test.ts); here its output and exit codes.
 * No database: the import works on files alone.
 */
const H = 3_600_000;
const start = Date.UTC(2025, 0, 1);

const oldFile = (file: string, n: number) => writeLegacyHourlyFile(file, n, start);

t.test('imports, reports per series, and exits 1 naming each refused file', async (t) => {
  const root = await tempDir(t);
  const dir = path.join(root, 'old');
  const dataRoot = path.join(root, 'data');
  const env = { DATA_ROOT: dataRoot, PATH: process.env.PATH };
  await oldFile(path.join(dir, 'KRW-BTC/1h/2025.parquet'), 24);
  await oldFile(path.join(dir, 'KRW-ETH/1D/2025.parquet'), 24);
  await mkdir(path.join(dir, 'KRW-XRP/1H'), { recursive: true });
  await writeFile(path.join(dir, 'KRW-XRP/1H/2025.parquet'), 'PAR1 not really');

  const dry = await wombat(['import', 'parquet', dir, '--dry-run'], env);
  t.equal(dry.code, 1, 'a refused file makes the exit code 1');
  t.match(dry.stdout, /^KRW-BTC\s+1H\s+1\s+24\s+0\s+0\s+stored$/m);
  t.match(dry.stdout, /dry run, nothing written: 1 file compared with .*, 2 refused/);
  t.match(dry.stderr, /^refused KRW-ETH\/1D\/2025.parquet: row 1 starts at 2025-01-01T01:00:00.000Z, not at the start of a 1D candle/m);
  t.match(dry.stderr, /^refused KRW-XRP\/1H\/2025.parquet: not a readable Parquet file/m);
  t.same(await readdir(root), ['old'], 'a dry run makes no folder');

  const run = await wombat(['import', 'parquet', dir, '--json'], env);
  t.equal(run.code, 1);
  t.same(run.json.series, [{ market: 'KRW-BTC', timeframe: '1H', files: 1, added: 24, present: 0, conflicting: 0, winner: 'stored', no_quote_volume: false }]);
  t.equal(run.json.refused, 2);
  const stored = await readCandlesParquet(dataRoot, { exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1H' }, new Date(start), new Date(start + 24 * H));
  t.same(stored.map((c) => [c.time.getTime(), c.close, c.quoteVolume]), Array.from({ length: 24 }, (_, i) => [start + i * H, 101 + i, 500 + i]));

  const only = await wombat(['import', 'parquet', path.join(dir, 'KRW-BTC'), '--prefer-import'], env);
  t.equal(only.code, 1, 'KRW-BTC alone is not in the <MARKET>/<timeframe>/<year> layout');
  t.match(only.stderr, /refused 1h\/2025.parquet: not in the <MARKET>\/<timeframe>\/<year>.parquet layout/);

  await oldFile(path.join(root, 'again/KRW-BTC/1H/2025.parquet'), 24);
  const again = await wombat(['import', 'parquet', path.join(root, 'again')], env);
  t.equal(again.code, 0, 'nothing refused: exit 0');
  t.match(again.stdout, /^KRW-BTC\s+1H\s+1\s+0\s+24\s+0\s+stored$/m);
});

t.test('refuses a command line naming no folder or another exchange', async (t) => {
  const root = await tempDir(t);
  const env = { DATA_ROOT: path.join(root, 'data') };
  const missing = await wombat(['import', 'parquet', path.join(root, 'nope')], env);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /is not a folder/);
  t.equal((await wombat(['import', 'parquet', root, '--exchange', 'kis'], env)).code, 2);
});

t.test("the collectors README's import lines run as written, old/data being the fixtures", async (t) => {
  const readme = readFileSync(path.join(repoRoot, 'packages/collectors/README.md'), 'utf8');
  const block = /```sh\n([^]*?)```/.exec(readme.slice(readme.indexOf("## Importing the old pipeline's files")))?.[1] ?? '';
  const lines = block.split('\n').map((l) => l.replace(/\s+#.*$/, '').trim()).filter(Boolean);
  t.same(lines, ['npx wombat import parquet old/data --dry-run', 'npx wombat import parquet old/data']);
  const root = await tempDir(t);
  const env = { DATA_ROOT: path.join(root, 'data') };
  await oldFile(path.join(root, 'old/data/KRW-BTC/1H/2025.parquet'), 24);
  const args = (line: string) => line.replace(/^npx wombat /, '').split(' ').map((a) => (a === 'old/data' ? path.join(root, 'old/data') : a));
  const dry = await wombat(args(lines[0]!), env);
  t.equal(dry.code, 0, lines[0]!, { stderr: dry.stderr });
  t.match(dry.stdout, /^KRW-BTC\s+1H\s+1\s+24\s+0\s+0\s+stored$/m);
  const run = await wombat(args(lines[1]!), env);
  t.equal(run.code, 0, lines[1]!, { stderr: run.stderr });
  t.match(run.stdout, /1 file merged into .*, 0 refused/);
});
