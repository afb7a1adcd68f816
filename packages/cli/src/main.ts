/**
 * The `wombat` command (bin/wombat runs this file). The only module of the CLI
 * that touches `process`: environment, output streams, signals and exit code.
 */
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { runCli } from './program.ts';

// The services' environment file, when the operator's shell does not set the variables itself.
const envFile = process.env.WOMBAT_ENV_FILE ?? (existsSync('/etc/wombat/wombat.env') ? '/etc/wombat/wombat.env' : undefined);
if (envFile) {
  try {
    // Variables already set in the environment win over the file.
    process.loadEnvFile(envFile);
  } catch (err) {
    process.stderr.write(`wombat: cannot read the environment file ${envFile} (WOMBAT_ENV_FILE): ${(err as Error).message}\n`);
    process.exit(2);
  }
}

const interrupt = new AbortController();
const onSignal = () => {
  // A second Ctrl-C leaves at once; the first lets the command record what it was doing.
  if (interrupt.signal.aborted) process.exit(130);
  interrupt.abort(new Error('interrupted'));
};

const argv = process.argv.slice(2);
// `wombat engine` hands signals to the engine's own lifecycle.
const engine = argv.find((a) => !a.startsWith('-')) === 'engine' && !argv.includes('--help') && !argv.includes('-h');
if (!engine) {
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

const code = await runCli(argv, {
  env: process.env,
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
  isTty: process.stdout.isTTY === true,
  errIsTty: process.stderr.isTTY === true,
  errStream: process.stderr,
  signal: interrupt.signal,
  async startEngine() {
    // Loaded only here: other commands start faster without the engine's modules.
    const [{ runService }, { loadConfig: loadEngineConfig, startService: startEngineService }] = await Promise.all([import('@wombat/core'), import('@wombat/scheduler-engine')]);
    // The engine owns the process from here: its lifecycle handles signals and exits.
    await runService({
      name: 'scheduler-engine',
      proc: process,
      loadConfig: loadEngineConfig,
      start: (config, deps) => startEngineService(config, { ...deps, host: hostname(), pid: process.pid }),
    });
    return new Promise<number>(() => {});
  },
});
process.exitCode = code;
// Output to a pipe is written asynchronously: let it drain, but never hang on a stray handle.
setTimeout(() => process.exit(code), 3000).unref();
