import t from 'tap';
import { backfillOptions, occurrencesIn, parseBackfillTime, previousOccurrence } from '@wombat/core/runs';
import { validateScheduleInput, type ScheduleDefinition } from '@wombat/core/schedules';

/** A backfill's range and occurrences: pure functions of the schedule and `now`. */
const def = (input: object): ScheduleDefinition => {
  const r = validateScheduleInput({ name: 'x', job: 'canary', ...input });
  if (!r.ok) throw new Error(r.problems.join('; '));
  return r.value;
};
const iso = (d: Date | null) => d?.toISOString() ?? null;

t.test('a date or a time without a zone is a wall time in the schedule\'s zone; a time with one is itself', async (t) => {
  t.equal(iso(parseBackfillTime('2026-11-02', 'Asia/Seoul')), '2026-11-01T15:00:00.000Z');
  t.equal(iso(parseBackfillTime('2026-11-02T09:30', 'Asia/Seoul')), '2026-11-02T00:30:00.000Z');
  t.equal(iso(parseBackfillTime('2026-11-02T09:30:00+09:00', 'UTC')), '2026-11-02T00:30:00.000Z');
  t.equal(iso(parseBackfillTime('2026-11-02T00:30:00Z', 'Asia/Seoul')), '2026-11-02T00:30:00.000Z');
  for (const bad of ['yesterday', '2026-13-01', '2026-11-02Z', '2026-11-02T25:00', '']) t.equal(parseBackfillTime(bad, 'UTC'), null, `"${bad}" is refused`);
});

t.test('occurrences in [from, to), refused past max', async (t) => {
  const daily = def({ cron: '0 0 * * *', timezone: 'UTC' });
  const from = new Date('2026-11-01T00:00:00Z');
  const to = new Date('2026-11-04T00:00:00Z');
  t.same(occurrencesIn(daily, from, to, 10).map(iso), ['2026-11-01T00:00:00.000Z', '2026-11-02T00:00:00.000Z', '2026-11-03T00:00:00.000Z'], 'from included, to excluded');
  t.equal(occurrencesIn(daily, from, to, 3).length, 3, 'exactly max is allowed');
  t.throws(() => occurrencesIn(daily, from, to, 2), { code: 'backfill_too_large', message: /more than 2 occurrences/ });
  const often = def({ every: '1s', timezone: 'UTC' });
  t.equal(occurrencesIn(often, from, new Date(from.getTime() + 1_200_000), 5000).length, 1200, 'batches of occurrences are walked through');
});

t.test('the previous occurrence, for the first period of a range', async (t) => {
  t.equal(iso(previousOccurrence(def({ cron: '0 0 * * *', timezone: 'UTC' }), new Date('2026-11-01T00:00:00Z'))), '2026-10-31T00:00:00.000Z');
  t.equal(iso(previousOccurrence(def({ cron: '0 0 1 * *', timezone: 'UTC' }), new Date('2026-03-01T00:00:00Z'))), '2026-02-01T00:00:00.000Z', 'a month back');
  t.equal(iso(previousOccurrence(def({ times: ['09:00', '18:00'], timezone: 'Asia/Seoul' }), new Date('2026-11-02T00:00:00Z'))), '2026-11-01T09:00:00.000Z');
  t.equal(iso(previousOccurrence(def({ every: '15m', timezone: 'UTC' }), new Date('2026-11-02T00:00:00Z'))), '2026-11-01T23:45:00.000Z');
});

t.test('the request is checked against the schedule and now, every problem at once', async (t) => {
  const now = new Date('2026-12-07T12:00:00Z');
  const s = { timezone: 'UTC' };
  t.match(backfillOptions(s, { from: '2026-12-01', to: '2026-12-07' }, now), { max: 1000, concurrency: 1, rerun: false, pauseOnFailure: false });
  const err = (() => {
    try {
      backfillOptions(s, { from: '2026-12-01', to: '2026-12-08', max: 0, concurrency: 101 }, now);
    } catch (e) {
      return e as { issues?: { field: string }[] };
    }
  })();
  t.same(err?.issues?.map((i) => i.field), ['to', 'max', 'concurrency'], 'a future end, a bad max and a bad concurrency, together');
  t.throws(() => backfillOptions(s, {}, now), { message: /from is required.*; to is required/ });
});
