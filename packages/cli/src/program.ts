import { Command, CommanderError, Help, Option } from 'commander';
import { createContext, EXIT, EXIT_CODES_HELP, toCliError, type Act, type CliRuntime } from './context.ts';
import { registerBackfill } from './commands/backfill.ts';
import { registerBackup, registerRestore } from './commands/backup.ts';
import { registerCancel } from './commands/cancel.ts';
import { registerCompletion } from './commands/completion.ts';
import { registerDlq } from './commands/dlq.ts';
import { registerEngine } from './commands/engine.ts';
import { registerImport } from './commands/import.ts';
import { registerRun } from './commands/run.ts';
import { registerRuns } from './commands/runs.ts';
import { registerSchedules } from './commands/schedules.ts';
import { registerSnapshot } from './commands/snapshot.ts';
import { registerStatus } from './commands/status.ts';
import { registerTrigger } from './commands/trigger.ts';
import { registerWorkers } from './commands/workers.ts';

const DESCRIPTION = `Wombat's operator command line. It talks to PostgreSQL directly, with the
services' environment (DATABASE_URL, or the embedded server under EMBEDDED_PG_DIR),
so it works whether or not the api runs.`;

export function buildProgram(rt: CliRuntime, result: { code: number }): Command {
  const act: Act = (fn) => async (...args) => {
    const cmd = args.at(-1) as Command;
    const g = cmd.optsWithGlobals<{ json?: boolean; verbose?: boolean }>();
    const ctx = createContext(rt, { json: g.json === true, verbose: g.verbose === true });
    try {
      result.code = (await fn(ctx, ...(args.slice(0, -1) as never))) ?? EXIT.ok;
    } finally {
      await ctx.close();
    }
  };

  const program = new Command('wombat')
    .description(DESCRIPTION)
    .addOption(new Option('--json', 'print JSON (one document) instead of tables, for scripts'))
    .addOption(new Option('-v, --verbose', 'log what happens (to stderr)'))
    .showSuggestionAfterError(true)
    .configureHelp({
      showGlobalOptions: true,
      sortSubcommands: false,
      // commander refuses a command without its required options but does not say so in --help.
      optionDescription(option) {
        const text = Help.prototype.optionDescription.call(this, option);
        return option.mandatory ? `(required) ${text}` : text;
      },
    })
    .addHelpText(
      'after',
      `
Environment: the services' variables (deploy/.env.example); WOMBAT_ENV_FILE names an env file
to read first (default /etc/wombat/wombat.env when it exists; set variables win).

${EXIT_CODES_HELP}

Examples:
  wombat status                       health at a glance (exit 1 when unhealthy)
  wombat schedules list
  wombat trigger daily-candles --wait
  wombat run collect-symbols
  wombat runs --state failed --since 1d
  wombat cancel --job fetch-candles --older-than 1h
  wombat dlq requeue --all
  wombat backup now                   a database backup into BACKUP_DIR
  wombat restore <file> --into <url>  into an empty database
  wombat import parquet old/data --dry-run`,
    );
  program.exitOverride();
  for (const register of [registerStatus, registerSchedules, registerTrigger, registerBackfill, registerRun, registerRuns, registerCancel, registerDlq, registerWorkers, registerBackup, registerRestore, registerSnapshot, registerImport]) register(program, act);
  registerEngine(program, rt, result);
  registerCompletion(program, rt);
  // Subcommands inherit the parse behaviour: usage errors end as CommanderError, not process.exit.
  program.commands.forEach(function inherit(c) {
    c.exitOverride().showSuggestionAfterError(true);
    c.commands.forEach(inherit);
  });
  return program;
}

/** Parses and runs one command line; resolves to the exit code. Never calls process.exit. */
export async function runCli(argv: string[], rt: CliRuntime): Promise<number> {
  const result = { code: EXIT.ok as number };
  const program = buildProgram(rt, result);
  program.configureOutput({ writeOut: (s) => rt.out(s.replace(/\n$/, '')), writeErr: (s) => rt.err(s.replace(/\n$/, '')) });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return result.code;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are successes; everything else commander refuses is a usage error it already printed.
      return ['commander.helpDisplayed', 'commander.help', 'commander.version'].includes(err.code) ? EXIT.ok : err.code === 'commander.executeSubCommandAsync' ? EXIT.ok : EXIT.usage;
    }
    if (rt.signal.aborted) {
      rt.err('wombat: interrupted');
      return EXIT.interrupted;
    }
    const e = toCliError(err);
    rt.err(`wombat: ${e.message}`);
    // Scripts reading --json output get a document on failure too, with the exit code in it.
    if (argv.includes('--json')) rt.out(JSON.stringify({ error: { code: e.code, message: e.message, exit_code: e.exitCode } }));
    return e.exitCode;
  }
}
