import t from 'tap';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createTestDatabase } from '@wombat/core/testing';
import { fakeExchange, runNode, tempDataRoot } from './helpers.ts';

// Real script processes: slow on a busy machine. Never a timing assertion.
t.setTimeout(600_000);

const scripts = path.join(import.meta.dirname, '..', 'scripts');

/** A collector script as an operator runs it (JSON logs at info). */
const runScript = (name: string, args: string[], env: Record<string, string>) => runNode(path.join(scripts, name), args, { LOG_LEVEL: 'info', ...env });

t.test('the scripts collect symbols and candles against the exchange and inspect the files', async (t) => {
  const fake = await fakeExchange(t);
  const db = await createTestDatabase(t);
  const dataRoot = await tempDataRoot(t);
  const env = {
    DATABASE_URL: db.url,
    DATA_ROOT: dataRoot,
    UPBIT_BASE_URL: fake.url,
    KIS_BASE_URL: fake.url,
    KIS_APP_KEY: 'app-key',
    KIS_APP_SECRET: 'app-secret',
    KIS_MASTER_KOSPI_URL: fake.masterUrls.kospi,
    KIS_MASTER_KOSDAQ_URL: fake.masterUrls.kosdaq,
  };

  const symbols = await runScript('collect-symbols.ts', [], env);
  t.equal(symbols.code, 0, symbols.stderr);
  // Log lines (JSON) share stdout with the summary, so match each summary line on its own.
  t.match(symbols.stdout, /^upbit: 5 symbols, 5 added, 0 renamed, 0 delisted$/m);
  t.match(symbols.stdout, /^kis: 5 symbols, 5 added, 0 renamed, 0 delisted$/m);

  const upbit = await runScript('collect-price-data.ts', ['--exchange', 'upbit', '--symbols', 'KRW-BTC,KRW-GAP', '--timeframes', '1H,1D', '--days-back', '3'], env);
  t.equal(upbit.code, 0, upbit.stderr);
  t.match(upbit.stdout, /^collected \d+ candles \(\d+ written\) for 4 of 4 series$/m);
  t.match(upbit.stdout, /"msg":"task finished"/, 'plain log lines when not on a terminal');
  t.notMatch(upbit.stdout, /budgets are local/, 'with DATABASE_URL the budget is shared');
  t.ok(existsSync(path.join(dataRoot, 'upbit', 'KRW-GAP', '1H')));

  const kis = await runScript('collect-price-data.ts', ['--exchange', 'kis', '--market', 'KOSDAQ', '--timeframes', '1D', '--days-back', '30', '--storage', 'both'], env);
  t.equal(kis.code, 0, kis.stderr);
  t.match(kis.stdout, /for 2 of 2 series/, 'the KOSDAQ symbols of the symbols table');
  const [row] = await db.sql<{ n: number }[]>`select count(*)::int as n from wombat.candles where exchange = 'kis'`;
  t.ok(row!.n > 20, 'postgres storage was used');
  // A second process reuses the token the first one stored: KIS would refuse a new one within the minute.
  const again = await runScript('collect-price-data.ts', ['--exchange', 'kis', '--symbols', '005930', '--timeframes', '1W', '--days-back', '60'], env);
  t.equal(again.code, 0, again.stderr);
  t.equal(fake.kis.tokensIssued, 1, 'one token across processes');

  const inspect = await runScript('inspect-parquet.ts', ['--path', path.join(dataRoot, 'upbit', 'KRW-GAP', '1H'), '--verbose'], env);
  t.equal(inspect.code, 0, inspect.stderr);
  t.match(inspect.stdout, /schema: time Timestamp<MILLISECOND, UTC>, open Float64/);
  t.match(inspect.stdout, /rows: \d+\n {2}range: \d{4}-.*\.\. \d{4}-/);
  t.match(inspect.stdout, /gaps: [1-9]\d* \(\d+ missing candles\)/, 'the gappy market shows gaps');
  t.match(inspect.stdout, /duplicates: 0\n {2}unsorted: 0/);
});

t.test('the scripts fail with a non-zero code and say what to fix', async (t) => {
  const fake = await fakeExchange(t);
  const dataRoot = await tempDataRoot(t);
  const env = { DATA_ROOT: dataRoot, UPBIT_BASE_URL: fake.url };

  const corrupt = path.join(dataRoot, 'broken.parquet');
  await writeFile(corrupt, 'not parquet');
  const [badTf, badEnv, unknown, inspect] = await Promise.all([
    runScript('collect-price-data.ts', ['--exchange', 'upbit', '--symbols', 'KRW-BTC', '--timeframes', '2H'], env),
    runScript('collect-price-data.ts', ['--exchange', 'upbit', '--symbols', 'KRW-BTC'], { ...env, STORAGE: 'disk' }),
    runScript('collect-price-data.ts', ['--exchange', 'upbit', '--symbols', 'KRW-BTC,KRW-NOPE', '--timeframes', '1D', '--days-back', '2'], env),
    runScript('inspect-parquet.ts', ['--path', corrupt], env),
  ]);
  t.equal(badTf.code, 2);
  t.match(badTf.stderr, /--timeframes: 2H not known; use 1m, 3m/);

  t.equal(badEnv.code, 2);
  t.match(badEnv.stderr, /STORAGE="disk": must be one of parquet, postgres, both/);

  t.equal(unknown.code, 1, 'one failed series fails the run');
  t.equal((unknown.stdout.match(/no DATABASE_URL: exchange request budgets are local to this script/g) ?? []).length, 1, 'one warning line: the budget is local');
  t.match(unknown.stdout, /for 1 of 2 series, 1 failed/);

  t.equal(inspect.code, 1);
  t.match(inspect.stdout, /unreadable/);
});
