// The control of shared-budget.test.ts: without a shared budget, the fake exchange sees the overdraft.
import t from 'tap';
import path from 'node:path';
import { fakeExchange, runNode, tempDataRoot } from './helpers.ts';

const here = import.meta.dirname;

const worker = (input: object) => runNode(path.join(here, 'fixtures', 'collect-worker.ts'), [JSON.stringify(input)]);

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

