import t from 'tap';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from '@wombat/core/platform';
import { createTestDatabase } from '@wombat/core/testing';
import { bin } from './helpers.ts';

/**
 * A reader that stops reading (`wombat status | head -1`) must end the command
 * quietly: no stack, no message, the command's own exit code (or 141, SIGPIPE's,
 * when it was cut short).
 */
t.setTimeout(600_000);
const tdb = await createTestDatabase(t);
const env = {
  PATH: `${path.join(repoRoot, 'node_modules', '.bin')}:${process.env.PATH ?? ''}`,
  DATABASE_URL: tdb.url,
  TZ: 'UTC',
};

function sh(line: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', line], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The command with its stdout a pipe whose reader is already gone: every write fails with EPIPE. */
function closedStdout(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

t.test('wombat status | head -1 prints the first line and wombat ends without a word, every time', async (t) => {
  for (let i = 0; i < 6; i++) {
    // PIPESTATUS: wombat's own status, which a shell with pipefail would report.
    const ran = await sh('wombat status | head -1; echo "wombat exit ${PIPESTATUS[0]}" >&2');
    t.match(ran.stdout, /^(healthy|UNHEALTHY)\n$/, 'the first line only');
    t.match(ran.stderr, /^wombat exit (0|1|141)\n$/, `no stack, no message: ${ran.stderr}`);
  }
});

t.test('every command ends quietly when its output is closed before it writes', async (t) => {
  for (const args of [['status'], ['status', '--json'], ['schedules', 'list'], ['runs'], ['workers'], ['dlq', 'list'], ['--help'], ['status', '--help']]) {
    const ran = await closedStdout(args);
    t.equal(ran.stderr, '', `wombat ${args.join(' ')}: nothing on stderr`);
    // status is unhealthy here (no engine runs): 1 is its own answer, not a crash.
    t.ok([0, 141].includes(ran.code!) || (args[0] === 'status' && ran.code === 1 && !args.includes('--help')), `wombat ${args.join(' ')}: exit ${ran.code}`);
  }
});
