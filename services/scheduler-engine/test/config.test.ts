import t from 'tap';
import { ConfigError } from '@wombat/core/platform';
import { builtInSchedules, loadConfig } from '@wombat/scheduler-engine';
import { checkScheduleDefinition } from '@wombat/core/schedules';

t.test('defaults: Asia/Seoul, scheduler on, daily candles at 09:00 UTC', async (t) => {
  const c = loadConfig({});
  t.equal(c.timezone, 'Asia/Seoul');
  t.equal(c.enableScheduler, true);
  t.equal(c.schedulerHour, 9);
  t.equal(c.schedulerMinute, 0);
  t.same(c.schedulerSymbols, ['KRW-BTC', 'KRW-ETH', 'KRW-XRP']);
  t.same(c.schedulerTimeframes, ['1H', '1D']);
  t.equal(c.taskResultTtlDays, 7);
  t.equal(c.runRetentionDays, 90);
});

t.test('names every bad variable at once', async (t) => {
  const err = (() => {
    try {
      loadConfig({ SCHEDULER_HOUR: '25', SCHEDULER_MINUTE: 'x', TZ: 'Nowhere/City', SCHEDULER_TIMEFRAMES: '1H,2H', PRICES_SCHEDULE_TIME: '24:00', ENABLE_SCHEDULER: 'maybe' });
    } catch (e) {
      return e;
    }
  })();
  t.ok(err instanceof ConfigError);
  const msg = (err as Error).message;
  for (const v of ['SCHEDULER_HOUR="25"', 'SCHEDULER_MINUTE="x"', 'TZ="Nowhere/City"', 'SCHEDULER_TIMEFRAMES="1H,2H"', 'PRICES_SCHEDULE_TIME="24:00"', 'ENABLE_SCHEDULER="maybe"']) {
    t.match(msg, v, `names ${v}`);
  }
  t.match(msg, /2H/);
});

t.test('built-in schedules follow the configuration and are valid', async (t) => {
  const defs = builtInSchedules(loadConfig({ TZ: 'Europe/Berlin', SCHEDULER_HOUR: '7', SCHEDULER_MINUTE: '5', SCHEDULER_SYMBOLS: 'KRW-SOL', PRICES_SCHEDULE_TIME: '01:30' }));
  t.same(
    defs.map((d) => [d.name, d.job, d.trigger, d.timezone]),
    [
      ['collect-symbols', 'collect-symbols', { kind: 'times', times: ['00:00'] }, 'Europe/Berlin'],
      ['collect-prices', 'collect-prices', { kind: 'times', times: ['01:30'] }, 'Europe/Berlin'],
      ['daily-candles', 'collect-prices', { kind: 'times', times: ['07:05'] }, 'UTC'],
    ],
  );
  t.same(defs[2]!.params, { exchanges: ['upbit'], symbols: ['KRW-SOL'], timeframes: ['1H', '1D'] });
  for (const d of defs) t.same(checkScheduleDefinition(d), [], `${d.name} is a valid definition`);
});
