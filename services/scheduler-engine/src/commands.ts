import {
  AppError,
  createDatabase,
  describeTrigger,
  getSchedule,
  getScheduleByName,
  listEngines,
  listSchedules,
  resolveDatabase,
  resolveFromRoot,
  startBoss,
  triggerSchedule,
  ValidationError,
  type Logger,
  type Schedule,
} from '@wombat/core';
import type { EngineConfig } from './config.ts';

export const USAGE = `usage: npx tsx services/scheduler-engine/src/cli.ts <command>
  list                                  schedules with their next and last occurrence, and engines
  trigger <schedule id or name> [json]  publish a manual run now (optional params as JSON)`;

export interface CliIo {
  out(line: string): void;
  err(line: string): void;
}

/** Runs one CLI command; resolves to the exit status (0 only on success). */
export async function runCommand(args: string[], config: EngineConfig, log: Logger, io: CliIo): Promise<number> {
  const [command, target, paramsJson] = args;
  if (command !== 'list' && command !== 'trigger') {
    io.err(command ? `unknown command "${command}"\n${USAGE}` : USAGE);
    return 2;
  }
  if (command === 'trigger' && !target) {
    io.err(`trigger needs a schedule id or name\n${USAGE}`);
    return 2;
  }
  let params: unknown;
  if (paramsJson !== undefined) {
    try {
      params = JSON.parse(paramsJson);
    } catch {
      io.err(`params must be JSON, for example '{"exchanges":["upbit"]}'`);
      return 2;
    }
  }
  const pg = await resolveDatabase({
    databaseUrl: config.databaseUrl,
    embeddedDir: resolveFromRoot(config.embeddedPgDir),
    embeddedPort: config.embeddedPgPort,
    log,
    adopt: true,
  });
  const database = createDatabase({ url: pg.url, poolSize: 2, applicationName: 'wombat-cli' });
  try {
    if (command === 'list') {
      for (const s of await listSchedules(database.db)) io.out(formatSchedule(s));
      for (const e of await listEngines(database.db)) {
        io.out(`engine ${e.host}:${e.pid} ${e.alive ? 'alive' : 'gone'} ${e.enabled ? 'enabled' : 'disabled'} last beat ${e.lastBeatAt.toISOString()}`);
      }
      return 0;
    }
    const s = /^\d+$/.test(target!) ? await getSchedule(database.db, Number(target)) : await getScheduleByName(database.db, target!);
    if (!s) {
      io.err(`no schedule with id or name "${target}"; \`list\` shows them`);
      return 1;
    }
    const boss = await startBoss({ url: pg.url, role: 'producer', log, poolSize: 1 });
    try {
      const runId = await triggerSchedule(database.db, boss, s.id, params === undefined ? {} : { params });
      io.out(`run ${runId} published for schedule ${s.id} (${s.name})`);
      return 0;
    } finally {
      await boss.stop({ graceful: false, close: true });
    }
  } catch (err) {
    if (err instanceof ValidationError) io.err(`invalid params: ${err.problems.join('; ')}`);
    else if (err instanceof AppError) io.err(err.message);
    else throw err;
    return 1;
  } finally {
    await database.close();
    await pg.stop();
  }
}

function formatSchedule(s: Schedule): string {
  const when = `${describeTrigger(s)} ${s.timezone}`;
  const next = s.nextRunAt?.toISOString() ?? '-';
  const last = s.lastRunAt?.toISOString() ?? '-';
  const status = s.status === 'paused' ? `paused${s.pausedReason ? ` (${s.pausedReason})` : ''}` : 'active';
  return `${String(s.id).padStart(4)}  ${s.name}${s.builtIn ? ' [built-in]' : ''}  ${s.job}  ${when}  ${status}  next ${next}  last ${last}`;
}
