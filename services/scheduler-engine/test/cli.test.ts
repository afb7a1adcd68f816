import t from 'tap';
import { createTestDatabase } from '@wombat/core/testing';
import { loadConfig } from '@wombat/scheduler-engine';
import { runCommand } from '../src/commands.ts';
import { addSchedule, runsOf } from './helpers.ts';

const tdb = await createTestDatabase(t);
const config = loadConfig({ DATABASE_URL: tdb.url });

async function cli(...args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCommand(args, config, tdb.log, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

t.test('trigger publishes a manual run by name or id and exits 0', async (t) => {
  const s = await addSchedule(tdb, { name: 'cli-target', job: 'canary', every: '1d', status: 'paused' });
  const byName = await cli('trigger', 'cli-target');
  t.equal(byName.code, 0, byName.err);
  t.match(byName.out, /run [0-9a-f-]{36} published for schedule/);
  const byId = await cli('trigger', String(s.id));
  t.equal(byId.code, 0);
  const runs = await runsOf(tdb, s.id);
  t.same(runs.map((r) => r.trigger), ['manual', 'manual']);
});

t.test('list shows schedules; bad use exits non-zero with a clear message', async (t) => {
  const list = await cli('list');
  t.equal(list.code, 0);
  t.match(list.out, /cli-target\s+canary\s+every 1d UTC\s+paused/);
  const unknown = await cli('trigger', 'no-such-schedule');
  t.equal(unknown.code, 1);
  t.match(unknown.err, /no schedule with id or name "no-such-schedule"/);
  const badParams = await cli('trigger', 'cli-target', '{"x":1}');
  t.equal(badParams.code, 1);
  t.match(badParams.err, /invalid params/);
  t.equal((await cli('frobnicate')).code, 2);
  t.equal((await cli('trigger')).code, 2);
});
