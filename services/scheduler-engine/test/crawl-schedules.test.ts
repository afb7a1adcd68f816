import { Writable } from 'node:stream';
import t from 'tap';
import { createLogger, type Logger } from '@wombat/core/platform';
import { checkScheduleDefinition, getScheduleByName, insertSchedule, setScheduleStatus } from '@wombat/core/schedules';
import { triggerSchedule } from '@wombat/core/runs';
import { createTestDatabase } from '@wombat/core/testing';
import { builtInSchedules, disabledBuiltIns, engineOptions, loadConfig } from '@wombat/scheduler-engine';
import { definition, startTestEngine, testBoss } from './helpers.ts';

function capturingLogger(): { log: Logger; lines: () => Record<string, unknown>[] } {
  const out: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      out.push(String(chunk));
      done();
    },
  });
  const log = createLogger({ name: 'engine-test', level: 'info', format: 'json', destination: destination as never });
  return { log, lines: () => out.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

t.test('the crawls are built-ins at 09:00 and 10:00 in TZ with overlap skip when configured', async (t) => {
  const c = loadConfig({ TZ: 'Asia/Seoul', PRICE_CRAWL_SOURCES: './price-sources.yaml', REDDIT_SUBREDDITS: 'hardware,korea' });
  const defs = builtInSchedules(c).filter((d) => d.job === 'crawl-prices' || d.job === 'collect-posts');
  t.same(
    defs.map((d) => [d.name, d.job, d.trigger, d.timezone, d.overlap, d.params]),
    [
      ['crawl-prices', 'crawl-prices', { kind: 'times', times: ['09:00'] }, 'Asia/Seoul', 'skip', {}],
      ['collect-posts', 'collect-posts', { kind: 'times', times: ['10:00'] }, 'Asia/Seoul', 'skip', {}],
    ],
  );
  for (const d of defs) t.same(checkScheduleDefinition(d), [], `${d.name} is a valid definition`);
  t.same(disabledBuiltIns(c).filter((o) => o.name === 'crawl-prices' || o.name === 'collect-posts'), []);

  const moved = builtInSchedules(loadConfig({ TZ: 'UTC', PRICE_CRAWL_SOURCES: 'x.json', PRICE_CRAWL_HOUR: '7', PRICE_CRAWL_MINUTE: '30', REDDIT_SUBREDDITS: 'a1', REDDIT_CRAWL_HOUR: '23', REDDIT_CRAWL_MINUTE: '5' }));
  t.same(moved.find((d) => d.name === 'crawl-prices')?.trigger, { kind: 'times', times: ['07:30'] });
  t.same(moved.find((d) => d.name === 'collect-posts')?.trigger, { kind: 'times', times: ['23:05'] });
});

t.test('unconfigured crawls are left out, each with its reason', async (t) => {
  const c = loadConfig({});
  t.notOk(builtInSchedules(c).some((d) => d.job === 'crawl-prices' || d.job === 'collect-posts'));
  const off = disabledBuiltIns(c).filter((o) => o.name === 'crawl-prices' || o.name === 'collect-posts');
  t.same(off.map((o) => o.name), ['crawl-prices', 'collect-posts']);
  t.match(off[0]!.reason, /PRICE_CRAWL_SOURCES is not set/);
  t.match(off[1]!.reason, /REDDIT_SUBREDDITS is not set/);
});

t.test('the data snapshot is a built-in at SNAPSHOT_TIME in TZ when SNAPSHOT_DIR is set, otherwise off with its reason', async (t) => {
  const on = builtInSchedules(loadConfig({ TZ: 'Europe/Berlin', SNAPSHOT_DIR: '/var/lib/wombat/snapshots' })).find((d) => d.job === 'data-snapshot');
  t.match(on, { name: 'data-snapshot', trigger: { kind: 'times', times: ['03:45'] }, timezone: 'Europe/Berlin', overlap: 'skip' });
  t.same(checkScheduleDefinition(on!), []);
  t.same(builtInSchedules(loadConfig({ SNAPSHOT_DIR: '/s', SNAPSHOT_TIME: '02:10' })).find((d) => d.job === 'data-snapshot')?.trigger, { kind: 'times', times: ['02:10'] });
  t.match(disabledBuiltIns(loadConfig({})).find((o) => o.name === 'data-snapshot'), { reason: /SNAPSHOT_DIR is not set/ });
  t.throws(() => loadConfig({ SNAPSHOT_TIME: '3:45' }), /SNAPSHOT_TIME="3:45": must be a time of day HH:MM/);
});

t.test('bad crawl times are named', async (t) => {
  t.throws(() => loadConfig({ PRICE_CRAWL_HOUR: '24', REDDIT_CRAWL_MINUTE: '60' }), /PRICE_CRAWL_HOUR="24"[\s\S]*REDDIT_CRAWL_MINUTE="60"/);
});

t.test('the engine creates the crawl schedules, they pause and run now, and an unconfigured start removes them saying why', async (t) => {
  const tdb = await createTestDatabase(t);
  const boss = await testBoss(t, tdb);
  const configured = engineOptions(loadConfig({ PRICE_CRAWL_SOURCES: 'sources.yaml', REDDIT_SUBREDDITS: 'hardware' }), { host: 'h', pid: 1 });
  const first = await startTestEngine(t, tdb, boss, { builtIns: configured.builtIns, disabledBuiltIns: configured.disabledBuiltIns! });
  const crawl = await getScheduleByName(tdb.db, 'crawl-prices');
  const posts = await getScheduleByName(tdb.db, 'collect-posts');
  t.ok(crawl?.builtIn, 'crawl-prices is a built-in schedule');
  t.equal(crawl?.status, 'active');
  t.ok(crawl?.nextRunAt, 'the engine computed its next run');
  t.equal(posts?.overlap, 'skip');

  const paused = await setScheduleStatus(tdb.db, crawl!.id, 'paused', 'shop maintenance');
  t.equal(paused?.status, 'paused', 'an operator can pause it like any schedule');
  const runId = await triggerSchedule(tdb.db, boss, posts!.id);
  t.ok(runId, 'it runs now on demand');
  const job = await boss.getJobById('collect-posts', runId!);
  t.equal(job?.name, 'collect-posts', 'the run now is a job on the collect-posts queue');
  await first.stop();

  const cap = capturingLogger();
  const unconfigured = engineOptions(loadConfig({}), { host: 'h', pid: 1 });
  const engine = await startTestEngine(t, { ...tdb, log: cap.log }, boss, { builtIns: unconfigured.builtIns, disabledBuiltIns: unconfigured.disabledBuiltIns! });
  t.equal(await getScheduleByName(tdb.db, 'crawl-prices'), null, 'the stale crawl schedule is gone');
  t.equal(await getScheduleByName(tdb.db, 'collect-posts'), null);
  const said = cap.lines().filter((l) => typeof l.msg === 'string' && /built-in schedule (crawl-prices|collect-posts) is off/.test(l.msg as string));
  t.equal(said.length, 2, 'one line per disabled crawl');
  t.match(said.map((l) => l.msg).join('\n'), /crawl-prices is off: PRICE_CRAWL_SOURCES is not set[\s\S]*collect-posts is off: REDDIT_SUBREDDITS is not set/);
  await engine.stop();
});

t.test('collect-prices waits for collect-symbols, the crawls for nothing; a crawl turned off that others wait for is kept, saying why', async (t) => {
  const tdb = await createTestDatabase(t);
  const boss = await testBoss(t, tdb);
  const configured = engineOptions(loadConfig({ TZ: 'Asia/Seoul', PRICE_CRAWL_SOURCES: 'sources.yaml' }), { host: 'h', pid: 1 });
  const first = await startTestEngine(t, tdb, boss, { builtIns: configured.builtIns, disabledBuiltIns: configured.disabledBuiltIns! });
  const prices = await getScheduleByName(tdb.db, 'collect-prices');
  t.match(prices, { after: ['collect-symbols'], waitForSeconds: 3600, timezone: 'Asia/Seoul', trigger: { kind: 'times', times: ['00:02'] } }, 'keeping its own time as the earliest');
  t.same((await getScheduleByName(tdb.db, 'collect-symbols'))?.after, []);
  t.same((await getScheduleByName(tdb.db, 'crawl-prices'))?.after, []);
  await insertSchedule(tdb.db, definition({ name: 'after-crawl', job: 'canary', times: ['11:00'], timezone: 'Asia/Seoul', after: ['crawl-prices'] }));
  await first.stop();

  const cap = capturingLogger();
  const unconfigured = engineOptions(loadConfig({ TZ: 'Asia/Seoul' }), { host: 'h', pid: 1 });
  const engine = await startTestEngine(t, { ...tdb, log: cap.log }, boss, { builtIns: unconfigured.builtIns, disabledBuiltIns: unconfigured.disabledBuiltIns! });
  t.ok(await getScheduleByName(tdb.db, 'crawl-prices'), 'kept: a schedule waits for it');
  const said = cap.lines().find((l) => typeof l.msg === 'string' && /built-in schedule crawl-prices is off .* but kept/.test(l.msg as string));
  t.match(said?.msg, /'crawl-prices' is a prerequisite of 'after-crawl'/);
  await engine.stop();
});
