import t from 'tap';
import type { SchedulerTables } from '@wombat/core/schedules';
import { backtestParams, startTestApi } from './helpers.ts';

/**
 * NUL and lone surrogates, in JSON keys as well as values, anywhere in a request:
 * 400 saying where, never a 500 from Postgres, never a value stored changed (U+FFFD).
 */
const api = await startTestApi(t);

const BAD = [
  { what: 'NUL', s: 'a\u0000b', says: /NUL character/ },
  { what: 'lone high surrogate', s: 'a\ud800b', says: /lone UTF-16 surrogate/ },
  { what: 'lone low surrogate', s: '\udc00', says: /lone UTF-16 surrogate/ },
];

for (const bad of BAD) {
  t.test(`${bad.what} in a key or a value answers 400`, async (t) => {
    const cases: { path: string; body: unknown; where: RegExp }[] = [
      { path: '/api/backtests/run-async', body: { ...backtestParams, options: { [bad.s]: 1 } }, where: /body\.options has a key/ },
      { path: '/api/tasks/backtest', body: { ...backtestParams, options: { lookback: 5, [bad.s]: 2 } }, where: /body\.options has a key/ },
      { path: '/api/tasks/fetch-candles', body: { exchange: 'upbit', symbol: bad.s, timeframe: '1D' }, where: /body\.symbol/ },
      { path: '/api/tasks/canary', body: { [bad.s]: true }, where: /body has a key/ },
      { path: '/api/schedules', body: { name: `sched-${bad.s}`, job: 'canary', every: '1h' }, where: /body\.name/ },
      { path: '/api/schedules', body: { name: 'ok-name', job: 'backtest', every: '1h', params: { ...backtestParams, options: { [bad.s]: 1 } } }, where: /body\.params\.options has a key/ },
      { path: '/api/schedules', body: { name: 'ok-name-2', job: 'canary', every: '1h', params: {}, [bad.s]: 1 }, where: /body has a key/ },
    ];
    for (const c of cases) {
      const r = await api.call('POST', c.path, { body: c.body });
      t.equal(r.status, 400, `${c.path}: 400`);
      t.equal(r.body.error?.code, 'invalid_request');
      t.match(r.body.error?.message, c.where, 'says where');
      t.match(r.body.error?.message, bad.says, 'and what is wrong');
    }
    const schedules = await api.database.db.withTables<SchedulerTables>().selectFrom('wombat.schedules').select('name').execute();
    t.notOk(schedules.some((s) => s.name.startsWith('sched-') || s.name.startsWith('ok-name')), 'no schedule was stored');
    const runs = await api.database.db.selectFrom('wombat.runs').select('id').execute();
    t.equal(runs.length, 0, 'no run was stored');
  });
}

t.test('a schedule rename to a name with a lone surrogate is refused, not stored as U+FFFD', async (t) => {
  const created = await api.call('POST', '/api/schedules', { body: { name: 'plain', job: 'canary', every: '1h' } });
  t.equal(created.status, 201);
  const r = await api.call('PATCH', `/api/schedules/${created.body.id}`, { body: { name: 'plain\ud83d' } });
  t.equal(r.status, 400);
  const row = await api.database.db.withTables<SchedulerTables>().selectFrom('wombat.schedules').select('name').where('id', '=', created.body.id).executeTakeFirstOrThrow();
  t.equal(row.name, 'plain', 'the name is unchanged');
});

t.test('well-formed text (emoji: a surrogate pair) passes', async (t) => {
  const r = await api.call('POST', '/api/schedules', { body: { name: 'rocket 🚀', job: 'canary', every: '1h' } });
  t.equal(r.status, 201);
  const row = await api.database.db.withTables<SchedulerTables>().selectFrom('wombat.schedules').select('name').where('id', '=', r.body.id).executeTakeFirstOrThrow();
  t.equal(row.name, 'rocket 🚀');
});
