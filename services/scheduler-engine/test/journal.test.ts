import t from 'tap';
import { PassThrough } from 'node:stream';
import { createLogger } from '@wombat/core/platform';
import { createTestDatabase } from '@wombat/core/testing';
import { createEngine } from '@wombat/scheduler-engine';
import { addSchedule, fastOptions, testBoss, waitFor } from './helpers.ts';

t.test('the engine tells at info each schedule with its next run at start, and each publication with its lateness', async (t) => {
  const tdb = await createTestDatabase(t);
  const boss = await testBoss(t, tdb);
  const collected = await addSchedule(tdb, { name: 'journal-symbols', job: 'collect-symbols', every: '1s', overlap: 'allow' });
  await addSchedule(tdb, { name: 'journal-canary', job: 'canary', every: '1s', overlap: 'allow' });
  const lines: Record<string, unknown>[] = [];
  const out = new PassThrough();
  out.on('data', (chunk: Buffer) => {
    for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l));
  });
  const log = createLogger({ name: 'engine', level: 'info', format: 'json', destination: out });
  const engine = createEngine({ db: tdb.db, sql: tdb.sql, boss, log, options: fastOptions });
  t.teardown(() => engine.stop());
  await engine.start();
  t.ok(await waitFor(async () => lines.some((l) => l.msg === 'published' && l.schedule === 'journal-symbols'), 10_000), 'a publication line');

  const loaded = lines.filter((l) => l.msg === 'schedule loaded');
  t.same(loaded.map((l) => l.schedule).sort(), ['journal-canary', 'journal-symbols'], 'one line per schedule at start');
  t.match(loaded.find((l) => l.schedule === 'journal-symbols'), { level: 30, scheduleId: collected.id, nextRunAt: String });
  const published = lines.find((l) => l.msg === 'published' && l.schedule === 'journal-symbols');
  t.match(published, { level: 30, scheduleId: collected.id, scheduledFor: String, runId: String, latenessMs: Number });
  t.notOk(lines.some((l) => l.msg === 'published' && l.schedule === 'journal-canary'), 'a per-second canary stays out of the info journal');
});
