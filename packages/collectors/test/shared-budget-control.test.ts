// The control of shared-budget.test.ts: without a shared budget, the fake exchange sees the overdraft.
import t from 'tap';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fakeExchange, tempDataRoot } from './helpers.ts';

const here = import.meta.dirname;

function run(file: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file, ...args], { env: { PATH: process.env.PATH ?? '', LOG_FORMAT: 'json', LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

const worker = (input: object) => run(path.join(here, 'fixtures', 'collect-worker.ts'), [JSON.stringify(input)]);

t.test('without a shared budget the same three processes overdraw the IP: the fake counts across processes', async (t) => {
  const fake = await fakeExchange(t, { upbit: { banAfter429s: 1_000_000 } });
  const dataRoot = await tempDataRoot(t);
  const base = { upbitUrl: fake.url, dataRoot };
  const tasks = (symbols: string[]) => symbols.map((symbol) => ({ exchange: 'upbit', symbol, timeframe: '1m', daysBack: 4 }));
  const results = await Promise.all([worker({ ...base, tasks: tasks(['KRW-BTC']) }), worker({ ...base, tasks: tasks(['KRW-ETH']) }), worker({ ...base, tasks: tasks(['KRW-GAP']) })]);
  for (const r of results) t.equal(r.code, 0, r.stderr);
  t.ok((fake.requests.upbit.byStatus[429] ?? 0) > 0, `local budgets get 429s (${fake.requests.upbit.byStatus[429] ?? 0})`);
  t.equal(fake.upbit.byClient.size, 1, 'one client address');
});

