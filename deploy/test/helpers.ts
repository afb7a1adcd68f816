import { execFileSync, spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { freePort, repoRoot } from '@wombat/core/platform';
import { childEnv } from '@wombat/core/testing';

const WORKSPACES = ['packages/core', 'packages/collectors', 'services/scheduler-engine', 'services/worker', 'services/api'];

/** The committed tree of this checkout (what `git clone` gives), with node_modules linked in. */
export function freshTree(dest: string): void {
  execFileSync('sh', ['-c', 'git -C "$1" archive --format=tar HEAD | tar -x -C "$2"', 'sh', repoRoot, dest]);
  const nm = path.join(dest, 'node_modules');
  mkdirSync(nm);
  for (const entry of readdirSync(path.join(repoRoot, 'node_modules'))) {
    if (entry === '@wombat') continue;
    symlinkSync(path.join(repoRoot, 'node_modules', entry), path.join(nm, entry));
  }
  // The workspaces must resolve to the clone's own sources, as npm ci would link them.
  mkdirSync(path.join(nm, '@wombat'));
  for (const ws of WORKSPACES) {
    symlinkSync(path.join('..', '..', ws), path.join(nm, '@wombat', path.basename(ws)));
    const nested = path.join(repoRoot, ws, 'node_modules');
    if (existsSync(nested)) symlinkSync(nested, path.join(dest, ws, 'node_modules'));
  }
}


/** The first ```sh block after `heading` in a README (`file`, from the checkout's root). */
export function readmeBlock(heading: string, file = 'README.md'): string[] {
  const readme = readFileSync(path.join(repoRoot, file), 'utf8');
  const from = readme.indexOf(heading);
  if (from < 0) throw new Error(`${file} has no "${heading}"`);
  const block = /```sh\n([^]*?)```/.exec(readme.slice(from));
  if (!block) throw new Error(`${file} has no sh block after "${heading}"`);
  return block[1]!.split('\n').filter((l) => l.trim() !== '');
}


/** The api's src/main.ts as a process of its own on a free port, killed at teardown; resolves once it listens (or has exited). */
export async function startApiProcess(t: { teardown(fn: () => unknown): void }, env: Record<string, string>): Promise<{ port: number; output(): string; exited: Promise<number | null>; stop(): void }> {
  const port = await freePort();
  const api = spawn(process.execPath, ['src/main.ts'], {
    cwd: path.join(repoRoot, 'services/api'),
    env: childEnv({ LOG_FORMAT: 'json', API_PORT: String(port), ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  api.stdout.on('data', (d: Buffer) => (out += String(d)));
  api.stderr.on('data', (d: Buffer) => (out += String(d)));
  const exited = new Promise<number | null>((resolve) => api.on('exit', resolve));
  t.teardown(() => api.kill('SIGKILL'));
  for (let i = 0; i < 600 && api.exitCode === null && !out.includes('"msg":"api listening"'); i++) await sleep(100);
  return { port, output: () => out, exited, stop: () => api.kill('SIGTERM') };
}
