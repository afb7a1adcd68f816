import { readFileSync } from 'node:fs';
import { resolveJobName } from '@wombat/core/jobs';
import { getSchedule, getScheduleByName, type Schedule } from '@wombat/core/schedules';
import { type CoreTables } from '@wombat/core/tables';
import { Option, type Command } from 'commander';
import type { Kysely } from 'kysely';
import { notFoundError, usage } from '../context.ts';

/** A schedule by id (digits) or by name; exit 3 when there is none. */
export async function resolveSchedule(db: Kysely<CoreTables>, ref: string): Promise<Schedule> {
  const s = /^\d+$/.test(ref) ? await getSchedule(db, Number(ref)) : await getScheduleByName(db, ref);
  if (!s) throw notFoundError(`no schedule with ${/^\d+$/.test(ref) ? 'id' : 'name'} "${ref}"; \`wombat schedules list\` shows them`);
  return s;
}

export function parseJsonOption(flag: string, text: string, example: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw usage(`${flag} must be JSON, for example ${example}`);
  }
}

/** The definition flags of create, edit and preview: the api's snake_case fields, one flag each. */
export function addDefinitionOptions(cmd: Command): Command {
  return cmd
    .option('--name <name>', 'unique name, 1-100 characters, not only digits')
    .option('--job <job>', 'job type the schedule runs (a name of the older setup, such as price-crawl, is stored as its job type)')
    .option('--cron <pattern>', 'cron pattern: 5 fields (minute hour day month weekday) or 6 with seconds first')
    .option('--every <interval>', 'fixed interval: 30s, 5m, 1h, 1d, 1w, 1mo')
    .option('--times <list>', 'times of day, comma-separated: 09:00,18:00')
    .option('--timezone <zone>', 'IANA time zone (default: TZ)')
    .option('--params <json>', 'job parameters as JSON, e.g. \'{"exchanges":["upbit"]}\'')
    .addOption(new Option('--overlap <policy>', 'when the previous run still runs').choices(['allow', 'skip', 'queue-one']))
    .addOption(new Option('--missed <policy>', 'occurrences missed while no engine ran').choices(['skip', 'once', 'all']))
    .option('--catchup-window-seconds <n>', 'how far back missed occurrences are caught up')
    .option('--catchup-max <n>', 'most missed occurrences run on catch-up')
    .option('--jitter-seconds <n>', 'spread publication up to N seconds after the occurrence')
    .option('--timeout-seconds <n>', 'job timeout (default: the job\'s)')
    .option('--max-retries <n>', 'retry limit (default: the job\'s)')
    .option('--retry-delay-seconds <n>', 'delay between retries (default: the job\'s)')
    .option('--retry-backoff', 'exponential backoff between retries')
    .option('--no-retry-backoff', 'fixed delay between retries')
    .option('--depends-on <names>', 'field after: schedules, comma-separated, whose runs of the same period must complete first ("" for none)')
    .option('--wait-for <duration>', 'field wait_for: how long an occurrence waits for them before it ends skipped: seconds or 90m, 1h (default 1h)')
    .option('--paused [reason]', 'save it paused (optionally saying why)')
    .option('--file <path>', 'read the definition from a JSON file in the api\'s shape; flags override its fields');
}

export interface DefinitionFlags {
  name?: string;
  job?: string;
  cron?: string;
  every?: string;
  times?: string;
  timezone?: string;
  params?: string;
  overlap?: string;
  missed?: string;
  catchupWindowSeconds?: string;
  catchupMax?: string;
  jitterSeconds?: string;
  timeoutSeconds?: string;
  maxRetries?: string;
  retryDelaySeconds?: string;
  retryBackoff?: boolean;
  dependsOn?: string;
  waitFor?: string;
  paused?: boolean | string;
  file?: string;
}

/** Whole numbers become numbers; anything else is passed on as text for the schema to name. */
const int = (v: string | undefined) => (v === undefined ? undefined : /^-?\d+$/.test(v.trim()) ? Number(v) : v);

/**
 * The flags as the api's JSON body, so the CLI's input is checked by the same
 * schedule schema as the api's (core validateScheduleInput).
 */
export function definitionBody(f: DefinitionFlags): Record<string, unknown> {
  let body: Record<string, unknown> = {};
  if (f.file !== undefined) {
    let text: string;
    try {
      text = readFileSync(f.file, 'utf8');
    } catch (err) {
      throw usage(`--file ${f.file}: ${(err as Error).message}`);
    }
    const parsed = parseJsonOption(`--file ${f.file}`, text, '{"name": "nightly", "job": "collect-symbols", "cron": "0 3 * * *"}');
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw usage(`--file ${f.file} must hold a JSON object`);
    body = parsed as Record<string, unknown>;
  }
  const set = (k: string, v: unknown) => {
    if (v !== undefined) body[k] = v;
  };
  set('name', f.name);
  // A name of the older setup (price-crawl) is stored as its job type; anything else goes to the schema to name.
  set('job', f.job === undefined ? undefined : (resolveJobName(f.job) ?? f.job));
  // A trigger flag replaces whatever trigger the file had.
  if (f.cron !== undefined || f.every !== undefined || f.times !== undefined) {
    delete body.cron;
    delete body.every;
    delete body.times;
  }
  set('cron', f.cron);
  set('every', f.every);
  set('times', f.times?.split(',').map((s) => s.trim()).filter(Boolean));
  set('timezone', f.timezone);
  set('params', f.params === undefined ? undefined : parseJsonOption('--params', f.params, '\'{"exchanges":["upbit"]}\''));
  set('overlap', f.overlap);
  set('missed', f.missed);
  set('catchup_window_seconds', int(f.catchupWindowSeconds));
  set('catchup_max', int(f.catchupMax));
  set('jitter_seconds', int(f.jitterSeconds));
  set('timeout_seconds', int(f.timeoutSeconds));
  set('max_retries', int(f.maxRetries));
  set('retry_delay_seconds', int(f.retryDelaySeconds));
  set('retry_backoff', f.retryBackoff);
  set('after', f.dependsOn?.split(',').map((s) => s.trim()).filter(Boolean));
  set('wait_for', int(f.waitFor));
  if (f.paused !== undefined) {
    body.status = 'paused';
    if (typeof f.paused === 'string') body.paused_reason = f.paused;
  }
  return body;
}
