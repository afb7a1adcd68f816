import t, { type Test } from 'tap';
import { ConfigError, loadConfig, ValidationError } from '@wombat/core/platform';
import type { Timeframe } from '@wombat/core/jobs';
import { testLogger } from '@wombat/core/testing';
import { addPeriods, collectorFields, collectorsOptionsFromConfig, createCollectors, kisClosedCutoff } from '@wombat/collectors';
import type { FakeExchange } from '@wombat/collectors/testing';
import { collectorsFor, fakeExchange, rows, tempDataRoot } from './helpers.ts';

/*
 * KRX trades on weekdays, 09:00-15:30 KST plus after-hours trading until 18:00 KST. Clock
 * instants are written in KST (UTC+9); 2026-11-27 is a Friday, 11-30 a Monday.
 */
const kst = (s: string) => new Date(`${s}+09:00`);
const day = (s: string) => new Date(`${s}T00:00:00Z`);
const SYMBOL = '005930';

function setup(t: Parameters<typeof fakeExchange>[0], start: string, extra: { finalAtKst?: string; kisSessionClose?: string } = {}) {
  let clock = kst(start);
  const now = () => clock;
  return {
    now,
    set(at: string) {
      clock = kst(at);
    },
    async open() {
      const fake = await fakeExchange(t, { now, kis: { ...(extra.finalAtKst ? { finalAtKst: extra.finalAtKst } : {}) } });
      const dataRoot = await tempDataRoot(t);
      const c = collectorsFor(t, fake, {
        dataRoot,
        now,
        kis: { baseUrl: fake.url, appKey: 'app-key-1', appSecret: 'secret-1', accountType: 'real' },
        ...(extra.kisSessionClose ? { kisSessionClose: extra.kisSessionClose } : {}),
      });
      return { fake, c };
    },
  };
}

async function lastStored(c: ReturnType<typeof createCollectors>, tf: Timeframe, exchange: 'kis' | 'upbit' = 'kis', symbol = SYMBOL): Promise<string | undefined> {
  const stored = await c.readCandles({ exchange, symbol, timeframe: tf, from: day('2020-01-01'), to: day('2030-01-01') });
  return stored.at(-1)?.time.toISOString().slice(0, 10);
}

/** Every stored candle equals the exchange's final values (read with the clock a month on). */
async function storedAreFinal(t: Test, clock: ReturnType<typeof setup>, fake: FakeExchange, c: ReturnType<typeof createCollectors>, tf: Timeframe) {
  const stored = await c.readCandles({ exchange: 'kis', symbol: SYMBOL, timeframe: tf, from: day('2020-01-01'), to: day('2030-01-01') });
  clock.set('2027-01-15T12:00:00');
  const truth = fake.kis.candles(SYMBOL, tf, stored[0]!.time, addPeriods(tf, stored.at(-1)!.time, 1));
  t.same(rows(stored), rows(truth), `${tf}: ${stored.length} stored candles hold the final values`);
}

t.test('closure per market calendar: KIS after the session close in KST, Upbit on UTC boundaries', async (t) => {
  const table: [string, Timeframe, string][] = [
    // before the close, in after-hours trading, at and after 18:00 KST
    ['2026-11-30T14:00:00', '1D', '2026-11-30'],
    ['2026-11-30T17:59:59', '1D', '2026-11-30'],
    ['2026-11-30T18:00:00', '1D', '2026-12-01'],
    ['2026-12-01T00:02:00', '1D', '2026-12-01'],
    ['2026-12-01T02:10:00', '1D', '2026-12-01'],
    // a week closes on Friday's session, a month on its last weekday's (Oct 31 2026 is a Saturday)
    ['2026-11-27T17:59:00', '1W', '2026-11-23'],
    ['2026-11-27T18:00:00', '1W', '2026-11-30'],
    ['2026-11-29T23:00:00', '1W', '2026-11-30'],
    ['2026-10-30T17:59:00', '1M', '2026-10-01'],
    ['2026-10-30T18:00:00', '1M', '2026-11-01'],
    ['2026-10-31T12:00:00', '1M', '2026-11-01'],
    ['2026-11-30T18:00:00', '1M', '2026-12-01'],
  ];
  for (const [at, tf, cutoff] of table) t.equal(kisClosedCutoff(tf, kst(at)).toISOString().slice(0, 10), cutoff, `${tf} at ${at} KST: closed before ${cutoff}`);
  t.equal(kisClosedCutoff('1D', kst('2026-11-30T16:00:00'), 15 * 60 + 30).toISOString().slice(0, 10), '2026-12-01', 'a 15:30 close counts the day closed at 16:00');
});

t.test('a trading day is stored after 18:00 KST: not during the session, not in after-hours trading', async (t) => {
  const clock = setup(t, '2026-11-30T14:00:00');
  const { fake, c } = await clock.open();
  const first = await c.fetchCandles({ exchange: 'kis', symbol: SYMBOL, timeframe: '1D', from: '2026-11-16T00:00:00Z' }, {});
  t.equal(first.last, '2026-11-27T00:00:00.000Z', '14:00 KST Monday: the session is open, Friday is the last closed day');
  clock.set('2026-11-30T17:30:00');
  const during = await c.fetchCandles({ exchange: 'kis', symbol: SYMBOL, timeframe: '1D' }, {});
  t.equal(during.fetched, 0, '17:30 KST: after-hours trading still changes the day');
  t.equal(await lastStored(c, '1D'), '2026-11-27');
  clock.set('2026-11-30T18:00:00');
  const after = await c.fetchCandles({ exchange: 'kis', symbol: SYMBOL, timeframe: '1D' }, {});
  t.same([after.fetched, after.last], [1, '2026-11-30T00:00:00.000Z'], '18:00 KST: Monday is closed and stored');
  await storedAreFinal(t, clock, fake, c, '1D');
});

t.test('the 00:02 KST collection stores the day that closed the evening before; Upbit keeps UTC days', async (t) => {
  for (const at of ['2026-12-01T00:02:00', '2026-12-01T02:10:00']) {
    const clock = setup(t, at);
    const { fake, c } = await clock.open();
    const r = await c.fetchCandles({ exchange: 'kis', symbol: SYMBOL, timeframe: '1D' }, {});
    t.equal(r.last, '2026-11-30T00:00:00.000Z', `${at} KST: Monday's session is stored`);
    const u = await c.fetchCandles({ exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1D', daysBack: 5 }, {});
    t.equal(u.last, '2026-11-29T00:00:00.000Z', `${at} KST: Upbit's UTC day of 11-30 is still open`);
    await storedAreFinal(t, clock, fake, c, '1D');
  }
});

t.test('Friday closes the day and the week; the weekend and Monday morning add nothing', async (t) => {
  const clock = setup(t, '2026-11-27T17:30:00');
  const { fake, c } = await clock.open();
  const from = '2026-11-02T00:00:00Z';
  await c.fetchCandles({ exchange: 'kis', symbol: SYMBOL, timeframe: '1D', from }, {});
  await c.fetchCandles({ exchange: 'kis', symbol: SYMBOL, timeframe: '1W', from }, {});
  t.same([await lastStored(c, '1D'), await lastStored(c, '1W')], ['2026-11-26', '2026-11-16'], 'Friday 17:30 KST: Friday and its week are open');
  clock.set('2026-11-27T18:05:00');
  await c.fetchCandles({ exchange: 'kis', symbol: SYMBOL, timeframe: '1D' }, {});
  await c.fetchCandles({ exchange: 'kis', symbol: SYMBOL, timeframe: '1W' }, {});
  t.same([await lastStored(c, '1D'), await lastStored(c, '1W')], ['2026-11-27', '2026-11-23'], 'Friday 18:05 KST: Friday and its week are closed');
  for (const at of ['2026-11-28T12:00:00', '2026-11-29T23:59:00', '2026-11-30T00:02:00', '2026-11-30T10:00:00']) {
    clock.set(at);
    const d = await c.fetchCandles({ exchange: 'kis', symbol: SYMBOL, timeframe: '1D' }, {});
    const w = await c.fetchCandles({ exchange: 'kis', symbol: SYMBOL, timeframe: '1W' }, {});
    t.same([d.written, w.written], [0, 0], `${at} KST: nothing new`);
  }
  clock.set('2026-11-30T19:00:00');
  await c.fetchCandles({ exchange: 'kis', symbol: SYMBOL, timeframe: '1D' }, {});
  await c.fetchCandles({ exchange: 'kis', symbol: SYMBOL, timeframe: '1W' }, {});
  t.same([await lastStored(c, '1D'), await lastStored(c, '1W')], ['2026-11-30', '2026-11-23'], 'Monday 19:00 KST: Monday is closed, its week is not');
  await storedAreFinal(t, clock, fake, c, '1D');
  clock.set('2026-11-30T19:00:00');
  await storedAreFinal(t, clock, fake, c, '1W');
});

t.test('a month closes at its last weekday session', async (t) => {
  const clock = setup(t, '2026-10-30T17:59:00');
  const { fake, c } = await clock.open();
  await c.fetchCandles({ exchange: 'kis', symbol: SYMBOL, timeframe: '1M', from: '2026-01-01T00:00:00Z' }, {});
  t.equal(await lastStored(c, '1M'), '2026-09-01', 'Friday Oct 30, 17:59 KST: October is open');
  clock.set('2026-10-30T18:00:00');
  await c.fetchCandles({ exchange: 'kis', symbol: SYMBOL, timeframe: '1M' }, {});
  t.equal(await lastStored(c, '1M'), '2026-10-01', 'Friday Oct 30, 18:00 KST: October is closed (Oct 31 is a Saturday)');
  clock.set('2026-11-30T17:00:00');
  await c.fetchCandles({ exchange: 'kis', symbol: SYMBOL, timeframe: '1M' }, {});
  t.equal(await lastStored(c, '1M'), '2026-10-01', 'Monday Nov 30, 17:00 KST: November is open');
  clock.set('2026-11-30T18:00:00');
  await c.fetchCandles({ exchange: 'kis', symbol: SYMBOL, timeframe: '1M' }, {});
  t.equal(await lastStored(c, '1M'), '2026-11-01', 'Monday Nov 30, 18:00 KST: November is closed');
  await storedAreFinal(t, clock, fake, c, '1M');
});

t.test('KIS_SESSION_CLOSE moves the close, and bad values say what to fix', async (t) => {
  const config = loadConfig(collectorFields, { KIS_SESSION_CLOSE: '16:00' });
  t.equal(collectorsOptionsFromConfig(config, { log: testLogger() }).kisSessionClose, '16:00');
  t.equal(collectorsOptionsFromConfig(loadConfig(collectorFields, {}), { log: testLogger() }).kisSessionClose, '18:00', 'default 18:00');
  for (const bad of ['15:00', '24:00', '6pm', '18:0']) {
    const err = (() => {
      try {
        loadConfig(collectorFields, { KIS_SESSION_CLOSE: bad });
      } catch (e) {
        return e;
      }
    })();
    t.type(err, ConfigError, `${bad} is refused`);
    t.match((err as Error).message, /KIS_SESSION_CLOSE.*HH:MM from 15:30/);
  }
  t.throws(() => createCollectors({ dataRoot: '/nonexistent', storage: 'parquet', upbit: { baseUrl: 'http://127.0.0.1:9' }, log: testLogger(), kisSessionClose: '9:00' }), ValidationError);

  const clock = setup(t, '2026-11-30T16:30:00', { finalAtKst: '16:00', kisSessionClose: '16:00' });
  const { fake, c } = await clock.open();
  const r = await c.fetchCandles({ exchange: 'kis', symbol: SYMBOL, timeframe: '1D', daysBack: 5 }, {});
  t.equal(r.last, '2026-11-30T00:00:00.000Z', 'closing at 16:00 KST, Monday is stored at 16:30');
  await storedAreFinal(t, clock, fake, c, '1D');
});
