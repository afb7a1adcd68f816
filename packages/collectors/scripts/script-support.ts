/**
 * What the manual collector scripts share: configuration from the environment,
 * a logger, an optional database, progress output (a bar on a terminal, log
 * lines otherwise) and Ctrl-C handling. Only scripts touch `process`.
 */
import cliProgress from 'cli-progress';
import {
  createDatabase,
  createLogger,
  databaseFields,
  loadConfig,
  processFields,
  resolveDatabase,
  resolveFromRoot,
  ConfigError,
  DATABASE_URL_MISSING,
  warnObsoleteSettings,
  type Database,
  type Logger,
} from '@wombat/core/platform';
import { collectorConfigProblems, collectorFields, collectorsOptionsFromConfig, crawlConfigProblems, crawlFields, createCollectors, type Collectors, type CrawlConfig } from '@wombat/collectors';

export const scriptFields = { ...databaseFields, ...processFields, ...collectorFields };

export type ScriptConfig = ReturnType<typeof loadScriptConfig>;

export interface ScriptContext {
  config: ScriptConfig;
  log: Logger;
  collectors: Collectors;
  signal: AbortSignal;
  db?: Database<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  close(): Promise<void>;
}

/** Exits with status 2 and the message: the command line or the environment needs fixing. */
export function usageError(message: string, usage: string): never {
  process.stderr.write(`${message}\n\n${usage}\n`);
  process.exit(2);
}

export async function openContext(name: string, opts: { needDb: (config: ReturnType<typeof loadScriptConfig>) => boolean }): Promise<ScriptContext> {
  let config: ReturnType<typeof loadScriptConfig>;
  try {
    config = loadScriptConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger({ name, level: config.logLevel, format: config.logFormat, isTty: process.stdout.isTTY === true });
  warnObsoleteSettings(process.env, log);
  let db: Database<any> | undefined; // eslint-disable-line @typescript-eslint/no-explicit-any
  let sessionUrl: string | undefined;
  let stopDb = async () => {};
  if (opts.needDb(config)) {
    if (config.databaseUrl === undefined) {
      process.stderr.write(`${new ConfigError([DATABASE_URL_MISSING]).message}\n`);
      process.exit(2);
    }
    const resolved = await resolveDatabase({
      databaseUrl: config.databaseUrl,
      embeddedDir: resolveFromRoot(config.embeddedPgDir),
      embeddedPort: config.embeddedPgPort,
      log,
    });
    db = createDatabase({ url: resolved.url, poolSize: 4, applicationName: name });
    sessionUrl = resolved.url;
    stopDb = async () => {
      await db!.close();
      await resolved.stop();
    };
  }
  // Parquet file locks are session advisory locks: held on a connection of their own to the session address.
  const collectors = createCollectors(collectorsOptionsFromConfig(config, { log, ...(db ? { db: db.db, sessionUrl: config.databaseSessionUrl ?? sessionUrl! } : {}) }));
  if (!collectors.budgetsShared) log.warn('no DATABASE_URL: exchange request budgets are local to this script; workers and other scripts calling the same exchange do not count against them');
  const ac = new AbortController();
  const onSignal = (sig: string) => {
    if (ac.signal.aborted) process.exit(130);
    log.warn({ signal: sig }, 'stopping: finishing nothing partial (press again to exit at once)');
    ac.abort(new Error(`interrupted by ${sig}`));
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  return {
    config,
    log,
    collectors,
    signal: ac.signal,
    ...(db ? { db } : {}),
    async close() {
      await collectors.close();
      await stopDb();
      log.flush();
    },
  };
}

function loadScriptConfig() {
  const config = loadConfig(scriptFields, process.env);
  const problems = collectorConfigProblems(config);
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

export interface ProgressReporter {
  step(label: string): (fraction: number, message?: string) => void;
  done(label: string, ok: boolean): void;
  stop(): void;
}

/** A bar on a terminal; on a pipe or journald, one log line per finished task. */
export function progressReporter(total: number, log: Logger): ProgressReporter {
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      { format: '{bar} {percentage}% | {finished}/{total} series | {label} {message}', stream: process.stderr, hideCursor: true },
      cliProgress.Presets.shades_classic,
    );
    let finished = 0;
    bar.start(total, 0, { finished: 0, label: '', message: '' });
    return {
      step: (label) => (fraction, message) => bar.update(finished + Math.min(0.99, fraction), { finished, label, message: message ?? '' }),
      done: () => bar.update(++finished, { finished }),
      stop: () => bar.stop(),
    };
  }
  let finished = 0;
  return {
    step: () => () => {},
    done: (label, ok) => log.info({ task: label, ok, finished: ++finished, total }, 'task finished'),
    stop: () => {},
  };
}

/** The crawl scripts' own variables (PRICE_CRAWL_*, REDDIT_*), checked before anything starts; exit 2 when bad. */
export function loadCrawlConfig(): CrawlConfig {
  try {
    const config = loadConfig(crawlFields, process.env);
    const problems = crawlConfigProblems(config);
    if (problems.length > 0) throw new ConfigError(problems);
    return config;
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}
