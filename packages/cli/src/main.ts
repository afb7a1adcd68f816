/**
 * The `wombat` command (bin/wombat runs this file). The only module of the CLI
 * that touches `process`: environment, output streams, signals and exit code.
 */
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { EXIT } from './context.ts';
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

// A reader that goes away (`wombat status | head -1`) ends the command quietly: the
// write's EPIPE arrives as an 'error' event, which would otherwise crash with a stack.
// Nothing more is printed (stderr included: the output was cut on purpose), and a
// command still running is stopped as by Ctrl-C.
let outputClosed = false;
const closedPipe = new Error('output closed');
const onOutputError = (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE' && err.code !== 'ERR_STREAM_DESTROYED') throw err;
  outputClosed = true;
  if (!interrupt.signal.aborted) interrupt.abort(closedPipe);
};
process.stdout.on('error', onOutputError);
process.stderr.on('error', onOutputError);

const argv = process.argv.slice(2);
// `wombat engine` hands signals to the engine's own lifecycle.
const engine = argv.find((a) => !a.startsWith('-')) === 'engine' && !argv.includes('--help') && !argv.includes('-h');
if (!engine) {
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

const code = await runCli(argv, {
  env: process.env,
  out: (text) => {
    if (!outputClosed) process.stdout.write(`${text}\n`);
  },
  err: (text) => {
    if (!outputClosed) process.stderr.write(`${text}\n`);
  },
  isTty: process.stdout.isTTY === true,
  errIsTty: process.stderr.isTTY === true,
  errStream: process.stderr,
  signal: interrupt.signal,
  async startEngine() {
    // Loaded only here: other commands start faster without the engine's modules.
    const [{ runService }, { loadConfig: loadEngineConfig, startService: startEngineService }] = await Promise.all([import('@wombat/core/platform'), import('@wombat/scheduler-engine')]);
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
// Cut short by the closed pipe: the status of a process ended by SIGPIPE (as git's), not 130.
process.exitCode = outputClosed && interrupt.signal.reason === closedPipe && code === EXIT.interrupted ? 141 : code;
// Output to a pipe is written asynchronously: let it drain, but never hang on a stray handle.
setTimeout(() => process.exit(code), 3000).unref();
