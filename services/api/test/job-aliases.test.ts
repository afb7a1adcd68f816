import t from 'tap';
import { ADMIN_TOKEN, startTestApi } from './helpers.ts';

/**
 * The older setup's job names where the api takes a job to run or to filter by, through core's
 * one table (JOB_ALIASES), as the CLI takes them.
 */
const api = await startTestApi(t);
const { sql } = api.database;

async function curl(method: string, urlPath: string, body?: string) {
  const res = await fetch(api.url + urlPath, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body } : {}),
  });
  return { status: res.status, body: (await res.json()) as any };
}

t.test('POST /api/tasks/{type} takes an older name, with - or _, and queues its job type', async (t) => {
  // curl -X POST $API/api/tasks/price-crawl -H "Authorization: Bearer ..."
  const bare = await curl('POST', '/api/tasks/price-crawl');
  t.equal(bare.status, 202, JSON.stringify(bare.body));
  const snake = await curl('POST', '/api/tasks/price_crawl', '{"sources":["shop-a"]}');
  t.equal(snake.status, 202, JSON.stringify(snake.body));
  const rows = await sql<{ id: string; job: string; params: unknown }[]>`select id, job, params from wombat.runs where id in (${bare.body.task_id}, ${snake.body.task_id}) order by created_at`;
  t.same(rows, [
    { id: bare.body.task_id, job: 'crawl-prices', params: {} },
    { id: snake.body.task_id, job: 'crawl-prices', params: { sources: ['shop-a'] } },
  ]);
  const status = await curl('GET', `/api/tasks/${bare.body.task_id}`);
  t.equal(status.body.type, 'crawl-prices');
});

t.test('the parameters are checked against the job the alias names', async (t) => {
  const wrong = await curl('POST', '/api/tasks/symbols', '{"exchanges":["binance"]}');
  t.equal(wrong.status, 400);
  t.match(wrong.body.error.message, /params\.exchanges/);
});

t.test('an unknown job name is 400 naming the path field, the job types and the older names', async (t) => {
  const res = await curl('POST', '/api/tasks/price-crawler');
  t.equal(res.status, 400);
  t.equal((await curl('POST', '/api/tasks/PRICE_CRAWL')).status, 400, 'case counts');
  t.equal(res.body.error.field, 'type');
  t.match(res.body.error.message, /"price-crawler" is not a job type; give one of .*crawl-prices.*price-crawl \(crawl-prices\)/);
  const trigger = await curl('POST', '/api/scheduler/trigger', '{"job":"price-crawler"}');
  t.equal(trigger.status, 400);
  t.equal(trigger.body.error.field, 'job');
});

t.test('POST /api/scheduler/trigger {job} and the run and dead-letter filters take older names', async (t) => {
  const triggered = await curl('POST', '/api/scheduler/trigger', '{"job":"reddit-collection"}');
  t.equal(triggered.status, 202, JSON.stringify(triggered.body));
  const [run] = await sql<{ job: string; trigger: string }[]>`select job, trigger from wombat.runs where id = ${triggered.body.run_id}`;
  t.same(run, { job: 'collect-posts', trigger: 'manual' });

  const runs = await curl('GET', '/api/runs?job=price-crawl');
  t.equal(runs.body.total, 2);
  t.ok(runs.body.runs.every((r: { job: string }) => r.job === 'crawl-prices'));

  await sql`update wombat.runs set state = 'failed', finished_at = now() - interval '2 hours', error = '{"message":"x"}' where job = 'crawl-prices'`;
  t.equal((await curl('GET', '/api/dead-letters?job=price-crawl')).body.total, 2);
  const purged = await curl('POST', '/api/dead-letters/purge', '{"older_than_hours":1,"job":"price-crawl"}');
  t.equal(purged.status, 200, JSON.stringify(purged.body));
  t.equal(purged.body.purged, 2);
});
