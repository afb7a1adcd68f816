import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { childEnv } from '@wombat/core/testing';
import { runCli } from '../src/index.ts';

interface Tap {
  teardown(fn: () => unknown): void;
}

export const bin = path.resolve(import.meta.dirname, '../bin/wombat');
const workerMain = path.resolve(import.meta.dirname, '../../../services/worker/src/main.ts');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON (for --json runs). */
  json: any;
}

const parse = (stdout: string): unknown => {
  try {
    return JSON.parse(stdout);
  } catch {
    return undefined;
  }
};

/**
 * Runs a `wombat` command line in this process (the same runCli the executable
 * runs, without a Node start per command) and collects what it printed.
 */
export async function wombat(args: string[], env: Record<string, string | undefined>): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const errStream = new PassThrough();
  errStream.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const code = await runCli(args, {
    env: env as NodeJS.ProcessEnv,
    out: (text) => (stdout += `${text}\n`),
    err: (text) => (stderr += `${text}\n`),
    isTty: false,
    errIsTty: false,
    errStream,
    signal: new AbortController().signal,
    startEngine: () => Promise.reject(new Error('the engine runs as a process of its own in tests')),
  });
  errStream.end();
  return { code, stdout, stderr, json: parse(stdout) };
}

/** Runs the real `wombat` executable (the bin npm links) and collects what it printed. */
export function wombatProcess(args: string[], env: Record<string, string | undefined>): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { env: { ...childEnv(), ...env } as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, json: parse(stdout) }));
  });
}

export interface Service {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

/** Spawns a long-running process and resolves once its output shows `ready`; killed at teardown. */
export async function startProcess(t: Tap, command: string, args: string[], env: Record<string, string>, ready: string): Promise<Service> {
  const child = spawn(command, args, { env: childEnv({ LOG_FORMAT: 'json', LOG_LEVEL: 'info', ...env }), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  const deadline = Date.now() + 60_000;
  while (!out.includes(ready)) {
    if (child.exitCode !== null) throw new Error(`${command} ${args.join(' ')} exited during start: ${out}`);
    if (Date.now() > deadline) throw new Error(`${command} ${args.join(' ')} did not start: ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, output: () => out, exited };
}

export function startWorker(t: Tap, env: Record<string, string>): Promise<Service> {
  return startProcess(t, process.execPath, [workerMain], { WORKER_POLL_INTERVAL_SECONDS: '0.5', ...env }, '"worker started"');
}

export function startEngine(t: Tap, env: Record<string, string>): Promise<Service> {
  return startProcess(t, bin, ['engine'], { ENGINE_HEARTBEAT_INTERVAL_MS: '500', ...env }, '"engine started"');
}

export async function tempDir(t: Tap): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'wombat-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}
