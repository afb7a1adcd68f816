import t from 'tap';
import { checkScheduleDefinition } from '@wombat/core/schedules';
import { builtInSchedules, disabledBuiltIns, loadConfig } from '@wombat/scheduler-engine';

t.test('BACKUP_DIR turns on the built-in database-backup schedule, daily at BACKUP_TIME in TZ', async (t) => {
  const c = loadConfig({ TZ: 'Asia/Seoul', BACKUP_DIR: '/var/lib/wombat/backups' });
  const def = builtInSchedules(c).find((d) => d.name === 'database-backup');
  t.match(def, { job: 'database-backup', trigger: { kind: 'times', times: ['03:30'] }, timezone: 'Asia/Seoul', overlap: 'skip', params: {} });
  t.same(checkScheduleDefinition(def!), []);
  t.notOk(disabledBuiltIns(c).some((o) => o.name === 'database-backup'));
  const moved = builtInSchedules(loadConfig({ TZ: 'UTC', BACKUP_DIR: '/b', BACKUP_TIME: '22:15' })).find((d) => d.name === 'database-backup');
  t.same(moved?.trigger, { kind: 'times', times: ['22:15'] });
  t.same(moved?.timezone, 'UTC');
});

t.test('without BACKUP_DIR the schedule is left out, saying why', async (t) => {
  const c = loadConfig({});
  t.notOk(builtInSchedules(c).some((d) => d.job === 'database-backup'));
  t.match(disabledBuiltIns(c).find((o) => o.name === 'database-backup'), { reason: /BACKUP_DIR is not set/ });
});

t.test('a bad BACKUP_TIME is named', async (t) => {
  t.throws(() => loadConfig({ BACKUP_DIR: '/b', BACKUP_TIME: '3:30pm' }), /BACKUP_TIME="3:30pm"/);
});
