import t from 'tap';
import { sql } from 'kysely';
import { AppError, ValidationError } from '@wombat/core/platform';
import {
  DAILY_PIPELINE,
  dependencyOrder,
  dependencyPeriod,
  deleteSchedule,
  firesOncePerDay,
  getSchedule,
  getScheduleByName,
  insertSchedule,
  latestOccurrenceAtOrBefore,
  parseWaitFor,
  updateSchedule,
  validateScheduleInput,
  type ScheduleDefinition,
} from '@wombat/core/schedules';
import { createTestDatabase } from '@wombat/core/testing';

function def(input: object): ScheduleDefinition {
  const r = validateScheduleInput(input);
  if (!r.ok) throw new Error(r.problems.join('; '));
  return r.value;
}

const at = (iso: string) => new Date(iso);

t.test('a daily schedule waits within its local day; midnight to midnight in its time zone', async (t) => {
  const prices = def({ name: 'p', job: 'canary', times: ['00:02'], timezone: 'Asia/Seoul' });
  const symbols = def({ name: 's', job: 'canary', times: ['00:00'], timezone: 'Asia/Seoul' });
  t.ok(firesOncePerDay(prices, at('2026-03-10T15:02:00Z')));
  // 00:02 in Seoul on 11 March is 15:02 UTC on 10 March: the day runs 15:00 UTC to 15:00 UTC.
  t.same(dependencyPeriod(prices, symbols, at('2026-03-10T15:02:00Z')), {
    from: at('2026-03-10T15:00:00Z'),
    to: at('2026-03-11T14:59:59.999Z'),
    kind: 'day',
  });
  // Across a DST change the local day is 23 hours long.
  const berlin = def({ name: 'b', job: 'canary', cron: '30 6 * * *', timezone: 'Europe/Berlin' });
  t.ok(firesOncePerDay(berlin, at('2026-03-29T04:30:00Z')));
  const p = dependencyPeriod(berlin, { ...berlin }, at('2026-03-29T04:30:00Z'))!;
  t.equal(p.to.getTime() + 1 - p.from.getTime(), 23 * 3_600_000);
  t.same(dependencyPeriod(def({ name: 'd', job: 'canary', every: '1d' }), symbols, at('2026-03-10T00:00:00Z'))?.kind, 'day');
});

t.test('other schedules wait for the prerequisite\'s latest occurrence at or before theirs', async (t) => {
  const hourly = def({ name: 'h', job: 'canary', cron: '5 * * * *' });
  const everyTen = def({ name: 'e', job: 'canary', every: '10m' });
  t.notOk(firesOncePerDay(hourly, at('2026-03-10T10:05:00Z')));
  t.notOk(firesOncePerDay(def({ name: 'w', job: 'canary', cron: '0 9 * * 1-5' }), at('2026-03-10T09:00:00Z')), 'weekdays only is not daily');
  t.same(dependencyPeriod(hourly, everyTen, at('2026-03-10T10:05:00Z')), { from: at('2026-03-10T10:00:00Z'), to: at('2026-03-10T10:05:00Z'), kind: 'occurrence' });
  t.same(latestOccurrenceAtOrBefore(everyTen, at('2026-03-10T10:10:00Z')), at('2026-03-10T10:10:00Z'), 'an occurrence at the same instant counts');
  const monthly = def({ name: 'm', job: 'canary', cron: '0 0 1 * *' });
  t.same(latestOccurrenceAtOrBefore(monthly, at('2026-03-20T00:00:00Z')), at('2026-03-01T00:00:00Z'), 'looks back as far as it must');
  const yearly = def({ name: 'y', job: 'canary', cron: '0 0 1 1 *' });
  t.same(dependencyPeriod(hourly, yearly, at('2026-03-10T10:05:00Z'))?.from, at('2026-01-01T00:00:00Z'));
});

t.test('dependency order: each after what it waits for, the given order otherwise; cycles and unknown names refused', async (t) => {
  t.same(dependencyOrder(DAILY_PIPELINE), ['collect-symbols', 'collect-prices', 'crawl-prices', 'collect-posts']);
  t.same(
    dependencyOrder([
      { name: 'report', after: ['prices', 'posts'] },
      { name: 'prices', after: ['symbols'] },
      { name: 'posts', after: [] },
      { name: 'symbols', after: [] },
    ]),
    ['symbols', 'prices', 'posts', 'report'],
  );
  t.throws(() => dependencyOrder([{ name: 'a', after: ['b'] }, { name: 'b', after: ['c'] }, { name: 'c', after: ['a'] }]), /dependency cycle: a -> b -> c -> a/);
  t.throws(() => dependencyOrder([{ name: 'a', after: ['a'] }]), /dependency cycle: a -> a/);
  t.throws(() => dependencyOrder([{ name: 'a', after: ['x'] }]), /a waits for x, which is not in the graph/);
});

t.test('after and wait_for: names, seconds or a duration, with what to fix', async (t) => {
  const v = def({ name: 'x', job: 'canary', every: '1h', after: ['b', ' a', 'b'], wait_for: '90m' });
  t.same(v.after, ['a', 'b'], 'trimmed, sorted, once each');
  t.equal(v.waitForSeconds, 5400);
  t.equal(def({ name: 'y', job: 'canary', every: '1h' }).waitForSeconds, 3600, 'default: an hour');
  t.same(def({ name: 'y', job: 'canary', every: '1h' }).after, []);
  t.equal(parseWaitFor(120), 120);
  t.equal(parseWaitFor('2d'), 172_800);
  t.equal(parseWaitFor('0s'), null);
  t.equal(parseWaitFor('8d'), null, 'at most a week');
  const bad = validateScheduleInput({ name: 'x', job: 'canary', every: '1h', after: ['x'], wait_for: 'soon' });
  t.notOk(bad.ok);
  if (!bad.ok) {
    t.match(bad.problems, [/cannot wait for itself/, /wait_for "soon" must be seconds/]);
    t.same(bad.issues.map((i) => i.field), ['after', 'wait_for']);
  }
  const notList = validateScheduleInput({ name: 'x', job: 'canary', every: '1h', after: 'a' });
  t.match(!notList.ok && notList.problems, [/after must be a list/]);
});

t.test('the database refuses unknown names, other time zones, cycles, and removing a prerequisite', async (t) => {
  const tdb = await createTestDatabase(t);
  const db = tdb.db;
  const a = await insertSchedule(db, def({ name: 'dep-a', job: 'canary', times: ['00:00'], timezone: 'Asia/Seoul' }));
  const b = await insertSchedule(db, def({ name: 'dep-b', job: 'canary', times: ['00:02'], timezone: 'Asia/Seoul', after: ['dep-a'], wait_for: 600 }));
  t.same(b.after, ['dep-a']);
  t.equal(b.waitForSeconds, 600);

  const unknown = await insertSchedule(db, def({ name: 'dep-c', job: 'canary', every: '1h', after: ['nope'] })).catch((e: unknown) => e);
  t.ok(unknown instanceof ValidationError);
  t.match((unknown as Error).message, /after names 'nope' which is not a schedule/);

  const zone = await insertSchedule(db, def({ name: 'dep-c', job: 'canary', every: '1h', timezone: 'UTC', after: ['dep-a'] })).catch((e: unknown) => e);
  t.ok(zone instanceof ValidationError);
  t.match((zone as Error).message, /prerequisites 'dep-a' \(Asia\/Seoul\) are not; a schedule may only wait for schedules of its own time zone/);

  const cycle = await updateSchedule(db, a.id, { after: ['dep-b'] }).catch((e: unknown) => e);
  t.ok(cycle instanceof ValidationError);
  t.match((cycle as Error).message, /after would make a cycle: 'dep-a' -> 'dep-b' -> 'dep-a'/);
  t.same((await getSchedule(db, a.id))?.after, [], 'the refused edit left the schedule as it was');

  const gone = await deleteSchedule(db, a.id).catch((e: unknown) => e);
  t.ok(gone instanceof AppError && gone.code === 'schedule_in_use');
  t.match((gone as Error).message, /'dep-a' is a prerequisite of 'dep-b'/);
  const renamed = await updateSchedule(db, a.id, { name: 'dep-a2' }).catch((e: unknown) => e);
  t.match((renamed as Error).message, /is a prerequisite of 'dep-b'/);
  const moved = await updateSchedule(db, a.id, { timezone: 'UTC' }).catch((e: unknown) => e);
  t.match((moved as Error).message, /'dep-b' \(Asia\/Seoul\) waits for 'dep-a'/);

  // Plain SQL goes through the same checks, and an accepted edit is a new version the engines follow.
  const sqlCycle = await sql`update wombat.schedules set after = '{dep-b}' where name = 'dep-a'`.execute(db).catch((e: unknown) => e);
  t.match((sqlCycle as Error).message, /cycle/);
  const c = await insertSchedule(db, def({ name: 'dep-c', job: 'canary', times: ['00:05'], timezone: 'Asia/Seoul' }));
  await sql`update wombat.schedules set after = '{dep-c, dep-a}' where name = 'dep-b'`.execute(db);
  const b2 = (await getScheduleByName(db, 'dep-b'))!;
  t.same(b2.after, ['dep-a', 'dep-c']);
  t.equal(b2.version, b.version + 1);
  const long = await sql`update wombat.schedules set after = '{dep-b}' where id = ${c.id}`.execute(db).catch((e: unknown) => e);
  t.match((long as Error).message, /'dep-c' -> 'dep-b' -> 'dep-c'/);
  t.equal(await deleteSchedule(db, b.id), true, 'a schedule nobody waits for is deleted');
  t.equal(await deleteSchedule(db, a.id), true, 'then its prerequisites can go');
});
