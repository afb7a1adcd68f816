import type { Command } from 'commander';
import type { CliRuntime } from '../context.ts';

export function registerEngine(program: Command, rt: CliRuntime, result: { code: number }): void {
  program
    .command('engine')
    .description('start the scheduler-engine in the foreground (as the wombat-scheduler-engine service does); Ctrl-C or SIGTERM stops it cleanly')
    .addHelpText('after', `
Reads the engine's environment (ENABLE_SCHEDULER, SCHEDULER_*, TZ, ENGINE_*; see deploy/.env.example)
and logs JSON lines to stdout (pretty on a terminal, LOG_FORMAT). Several engines may run at once;
each occurrence is still published once. Exit 0 after a clean stop, 1 on bad configuration or a failed start.`)
    .action(async () => {
      result.code = await rt.startEngine();
    });
}
