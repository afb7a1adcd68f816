/**
 * Operator commands: `npx tsx services/scheduler-engine/src/cli.ts list | trigger <id or name>`.
 * Exits 0 only on success.
 */
import { ConfigError, createLogger } from '@wombat/core';
import { runCommand } from './commands.ts';
import { loadConfig } from './config.ts';

let code: number;
try {
  const config = loadConfig(process.env);
  const log = createLogger({ name: 'scheduler-cli', level: process.env.LOG_LEVEL ?? 'warn', format: config.logFormat, isTty: process.stderr.isTTY, destination: process.stderr });
  code = await runCommand(process.argv.slice(2), config, log, { out: (l) => console.log(l), err: (l) => console.error(l) });
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : `failed: ${(err as Error).message}`);
  code = 1;
}
process.exit(code);
