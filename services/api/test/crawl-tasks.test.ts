import t from 'tap';
import { startTestApi } from './helpers.ts';

const api = await startTestApi(t);

t.test('the crawls can be run now through the api: their queues exist and their params are checked', async (t) => {
  const queues = await api.database.sql<{ name: string }[]>`select name from pgboss.queue where name in ('crawl-prices', 'collect-posts') order by name`;
  t.same(queues.map((q) => q.name), ['collect-posts', 'crawl-prices'], 'the migrator created both queues');

  const crawl = await api.call('POST', '/api/tasks/crawl-prices', { body: { sources: ['shop-gpus'] } });
  t.equal(crawl.status, 202);
  const posts = await api.call('POST', '/api/tasks/collect-posts', { body: { subreddits: ['hardware'], horizonHours: 24, maxPages: 2 } });
  t.equal(posts.status, 202);
  const runs = await api.database.db.selectFrom('wombat.runs').select(['id', 'job', 'params', 'trigger']).where('id', 'in', [crawl.body.task_id, posts.body.task_id]).orderBy('job').execute();
  t.match(runs, [
    { job: 'collect-posts', trigger: 'task', params: { subreddits: ['hardware'], horizonHours: 24, maxPages: 2 } },
    { job: 'crawl-prices', trigger: 'task', params: { sources: ['shop-gpus'] } },
  ]);
  const job = await api.database.sql<{ name: string }[]>`select name from pgboss.job where id = ${crawl.body.task_id}`;
  t.equal(job[0]?.name, 'crawl-prices');

  const bad = await api.call('POST', '/api/tasks/collect-posts', { body: { subreddits: ['r/not valid'], maxPages: 0 } });
  t.equal(bad.status, 400);
  t.match(bad.body.error.message, /params\.subreddits\.0/);
  t.match(bad.body.error.message, /params\.maxPages must be >= 1/);
  const extra = await api.call('POST', '/api/tasks/crawl-prices', { body: { url: 'https://x' } });
  t.equal(extra.status, 400);
  t.match(extra.body.error.message, /unknown field url/);
});
