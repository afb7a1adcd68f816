import t from 'tap';
import type { Schedule } from '@wombat/core/schedules';
import { dueOccurrences, MAX_DUE_PER_PASS } from '@wombat/scheduler-engine';
import { definition } from './helpers.ts';

const schedule = (input: object, id = 1): Schedule => ({
  ...definition({ name: 'due', job: 'canary', ...input }),
  id,
  builtIn: false,
  version: 1,
  createdAt: new Date(0),
  updatedAt: new Date(0),
  nextRunAt: null,
  lastRunAt: null,
  lastRunId: null,
});
const base = Date.parse('2026-01-01T00:00:00Z');

t.test('returns the occurrences after the cursor that have come, with the one after each', async (t) => {
  const due = dueOccurrences(schedule({ every: '1m' }), base, base + 3 * 60_000 + 5);
  t.same(due.map((d) => d.at.getTime() - base), [60_000, 120_000, 180_000]);
  t.equal(due.at(-1)!.next!.getTime() - base, 240_000);
  t.same(dueOccurrences(schedule({ every: '1m' }), base, base + 59_999), [], 'nothing before the first occurrence');
});

t.test('an occurrence is due only once its jitter has passed', async (t) => {
  const s = schedule({ every: '1m', jitter_seconds: 30 }, 42);
  const [first] = dueOccurrences(s, base, base + 2 * 60_000);
  const jitter = first!.fireAt.getTime() - first!.at.getTime();
  t.ok(jitter >= 0 && jitter < 30_000);
  t.equal(dueOccurrences(s, base, first!.fireAt.getTime() - 1).length, 0);
  t.equal(dueOccurrences(s, base, first!.fireAt.getTime()).length, 1);
});

t.test('a long backlog is cut at the per-pass limit', async (t) => {
  const due = dueOccurrences(schedule({ cron: '* * * * * *' }), base, base + 3 * 3_600_000);
  t.equal(due.length, MAX_DUE_PER_PASS);
  t.equal(due[0]!.at.getTime(), base + 1000);
});
