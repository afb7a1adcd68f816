import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startFakeExchange } from '@wombat/collectors/testing';
import { createTestDatabase } from '@wombat/core/testing';
import t from 'tap';
import { freshTree, readmeBlock } from './helpers.ts';

/**
 * The "Collect by hand" commands of packages/collectors/README.md, run as written (`npx tsx ...`) from a
 * tree of the committed files, against the local fake exchanges. The one change:
 * the inspected year file is this year's, where the README names 2026.
 */
t.setTimeout(600_000);

const fake = await startFakeExchange();
t.teardown(() => fake.close());
const db = await createTestDatabase(t);
const tree = await mkdtemp(path.join(tmpdir(), 'wombat-readme-'));
t.teardown(() => rm(tree, { recursive: true, force: true }));
freshTree(tree);

const env = {
  ...process.env,
  LOG_FORMAT: 'json',
  DATABASE_URL: db.url,
  UPBIT_BASE_URL: fake.url,
  KIS_BASE_URL: fake.url,
  KIS_APP_KEY: 'app-key',
  KIS_APP_SECRET: 'app-secret',
  KIS_MASTER_KOSPI_URL: fake.masterUrls.kospi,
  KIS_MASTER_KOSDAQ_URL: fake.masterUrls.kosdaq,
};

function run(line: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('sh', ['-c', line], { cwd: tree, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (output += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (output += s));
    child.on('exit', (code) => resolve({ code, output }));
  });
}

t.test('every manual collection command of the README works as written', async (t) => {
  const lines = readmeBlock('## Collect by hand', 'packages/collectors/README.md');
  t.equal(lines.length, 4, 'symbols, Upbit candles, KIS candles, inspect');
  const year = String(new Date().getUTCFullYear());
  for (const raw of lines) t.match(raw, /^npx tsx packages\/collectors\/scripts\/[a-z-]+\.ts/, 'a script run with npx tsx');
  // The symbols first (KIS collects the symbols they list), the inspection last (it reads what
  // was collected); the collections between them (each its own files and budget) side by side.
  const all = lines.map((raw) => ({ raw, line: raw.replace(/\/2026\.parquet/, `/${year}.parquet`) }));
  const isSymbols = (l: { raw: string }) => l.raw.includes('/collect-symbols.ts');
  const isInspect = (l: { raw: string }) => l.raw.includes('/inspect-parquet.ts');
  const steps = [all.filter(isSymbols), all.filter((l) => !isSymbols(l) && !isInspect(l)), all.filter(isInspect)];
  for (const step of steps) {
    const ran = await Promise.all(step.map(({ line }) => run(line)));
    for (const [i, { code, output }] of ran.entries()) {
      const { raw } = step[i]!;
      t.equal(code, 0, raw, { output: output.slice(-2000) });
      if (raw.includes('inspect-parquet')) t.match(output, /^ {2}rows: [1-9]\d*$/m, 'the inspection counts the file\'s rows');
    }
  }
  t.ok(existsSync(path.join(tree, 'data', 'upbit', 'KRW-BTC', '1H', `${year}.parquet`)), 'candles under DATA_ROOT (./data of the tree)');
  const [row] = await db.sql<{ n: number }[]>`select count(*)::int as n from wombat.symbols where exchange = 'kis'`;
  t.ok(row!.n > 0, 'KIS symbols stored by collect-symbols');
});
