/**
 * The README's systemd install sequence, line by line, into a scratch root: every
 * absolute path moves under the scratch root, the service user gets a name of
 * this test's own, `npm ci` is replaced by linking this checkout's node_modules
 * and `systemctl` works offline (`--root`). A README line this test does not know
 * fails it, so the README and the test cannot drift apart. Then the installed
 * units pass `systemd-analyze verify` and `security`, and the migrate unit's
 * ExecStart runs as the service user with the installed environment file.
 */
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig as loadApiConfig } from '@wombat/api';
import { loadConfig as loadEngineConfig } from '@wombat/scheduler-engine';
import { loadConfig as loadWorkerConfig } from '@wombat/worker';
import { repoRoot } from '@wombat/core/platform';
import { createEmptyTestDatabase } from '@wombat/core/testing';
import { freshTree, readmeBlock } from './helpers.ts';

const isRoot = process.getuid?.() === 0;
const hasTool = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const ci = process.env.CI === 'true' || process.env.WOMBAT_CI === '1';

function envFile(file: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (m) env[m[1]!] = m[2]!;
  }
  return env;
}

/** Unit files as installed, with their absolute paths moved under `root`, for offline checks. */
function rootedUnits(root: string, out: string): string[] {
  mkdirSync(out, { recursive: true });
  const dir = path.join(root, 'etc/systemd/system');
  const files: string[] = [];
  for (const f of readdirSync(dir).filter((f) => /^wombat.*\.(service|target)$/.test(f))) {
    const text = readFileSync(path.join(dir, f), 'utf8').replaceAll('/opt/wombat', `${root}/opt/wombat`).replaceAll('/etc/wombat', `${root}/etc/wombat`);
    writeFileSync(path.join(out, f), text);
    files.push(path.join(out, f));
  }
  const template = files.find((f) => f.endsWith('wombat-worker@.service'));
  if (template) {
    writeFileSync(path.join(out, 'wombat-worker@1.service'), readFileSync(template, 'utf8'));
    files.splice(files.indexOf(template), 1, path.join(out, 'wombat-worker@1.service'));
  }
  return files;
}

t.test('the README install sequence works line by line on a clean host (scratch root)', { skip: isRoot ? false : 'needs root (useradd, install -o); .ci/run runs as root' }, async (t) => {
  const root = mkdtempSync(path.join(tmpdir(), 'wombat-host-'));
  execFileSync('chmod', ['0755', root]);
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  // What a clean Debian host already has.
  for (const d of ['etc/systemd/system', 'opt', 'var/lib', 'usr/lib/systemd/system']) mkdirSync(path.join(root, d), { recursive: true });
  const user = `wbs${process.pid}`.slice(0, 30);
  t.teardown(() => spawnSync('userdel', [user]));
  const db = await createEmptyTestDatabase(t);

  const rooted = (p: string) => (p.startsWith('/opt/') || p.startsWith('/etc/') || p.startsWith('/var/') ? path.join(root, p) : p);
  const rootArgs = (line: string) => line.replace(/(^|\s)(\/(?:opt|etc|var)\/\S*)/g, (_m, pre: string, p: string) => `${pre}${rooted(p)}`);
  let cwd = root;
  const sh = (cmd: string) => execFileSync('sh', ['-c', cmd], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

  const lines = readmeBlock('## Production with systemd');
  t.ok(lines.length >= 10, 'the README has an install sequence');
  for (const raw of lines) {
    const line = raw.replace(/\s+#\s.*$/, '').replace(/^sudo /, '').replaceAll(/(-[og] |nologin )wombat\b/g, `$1${user}`);
    let m: RegExpExecArray | null;
    if ((m = /^useradd (.*) (\S+)$/.exec(line))) {
      sh(`useradd ${m[1]} ${m[2]}`);
      t.equal(spawnSync('id', ['-u', user]).status, 0, `user created: ${raw}`);
    } else if ((m = /^git clone "\$WOMBAT_REPO" (\S+)$/.exec(line))) {
      const dest = rooted(m[1]!);
      mkdirSync(dest);
      freshTree(dest);
      t.ok(existsSync(path.join(dest, 'package.json')), `cloned: ${raw}`);
    } else if ((m = /^cd (\S+) && sudo npm ci --omit=dev$/.exec(line))) {
      cwd = rooted(m[1]!);
      // npm ci itself is not under test here (node_modules is linked); what the units need from it is.
      t.match(execFileSync(path.join(cwd, 'node_modules/.bin/node'), ['--version'], { encoding: 'utf8' }), /^v24\./, `bundled Node 24: ${raw}`);
      // npm ci ends with the root package's postinstall, which builds the services the units run.
      const postinstall = (JSON.parse(readFileSync(path.join(cwd, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.postinstall;
      t.match(postinstall, /^node deploy\/build\.ts( |$)/, 'npm ci builds the services');
      execFileSync(path.join(cwd, 'node_modules/.bin/node'), ['deploy/build.ts'], { cwd, stdio: 'ignore' });
    } else if (/^(install|sed|cp) /.test(line)) {
      sh(rootArgs(line));
      t.pass(raw);
    } else if (/^sudoedit /.test(line)) {
      const file = rooted(line.split(' ')[1]!);
      writeFileSync(file, readFileSync(file, 'utf8').replace(/^DATABASE_URL=.*$/m, `DATABASE_URL=${db.url}`));
      t.pass(`edited: ${raw}`);
    } else if ((m = /^ln -sf (\S+) (\S+)$/.exec(line))) {
      // The operators' `wombat` command: the link goes into the scratch root, to a file the clone has.
      const target = rooted(m[1]!);
      const link = path.join(root, m[2]!);
      mkdirSync(path.dirname(link), { recursive: true });
      sh(`ln -sf ${target} ${link}`);
      t.ok(existsSync(link) && (statSync(link).mode & 0o111) !== 0, `an executable behind the link: ${raw}`);
    } else if (line === 'systemctl daemon-reload') {
      t.pass('daemon-reload: nothing to reload offline');
    } else if ((m = /^systemctl enable --now (\S+)$/.exec(line))) {
      sh(`systemctl --root=${root} enable ${m[1]}`);
      t.pass(raw);
    } else {
      t.fail(`README line this test does not know how to run: ${raw}`);
    }
  }

  // What the sequence left behind.
  const stat = (p: string) => execFileSync('stat', ['-c', '%U:%G %a', path.join(root, p)], { encoding: 'utf8' }).trim();
  t.equal(stat('var/lib/wombat/data'), `${user}:${user} 750`, 'the data directory belongs to the service user');
  t.equal(stat('etc/wombat/wombat.env'), `root:${user} 640`, 'the environment file is readable by the service only');
  const env = envFile(path.join(root, 'etc/wombat/wombat.env'));
  t.equal(env.DATA_ROOT, '/var/lib/wombat/data');
  t.match(env.API_ADMIN_TOKEN, /^[a-zA-Z0-9]{40}$/, 'an admin token was generated');
  for (const [name, load] of [
    ['api', loadApiConfig],
    ['scheduler-engine', loadEngineConfig],
    ['worker', loadWorkerConfig],
  ] as const) {
    t.doesNotThrow(() => load({ ...env, LOG_FORMAT: 'json' }), `${name} accepts the installed environment`);
  }
  const wants = path.join(root, 'etc/systemd/system/wombat.target.wants');
  // wombat.target itself Wants= migrate, engine, api and worker@1; enabling adds worker@2.
  t.same(readdirSync(wants), ['wombat-worker@2.service'], 'a second worker is enabled');
  t.ok(readlinkSync(path.join(root, 'etc/systemd/system/multi-user.target.wants/wombat.target')).endsWith('wombat.target'), 'the target starts at boot');

  // Every unit runs a file the installed tree has.
  for (const unit of readdirSync(path.join(root, 'etc/systemd/system')).filter((u) => u.endsWith('.service'))) {
    const text = readFileSync(path.join(root, 'etc/systemd/system', unit), 'utf8');
    const [, ...args] = /^ExecStart=(.*)$/m.exec(text)![1]!.split(' ');
    const dir = /^WorkingDirectory=(.*)$/m.exec(text)![1]!;
    const main = args.find((a) => !a.startsWith('-'))!;
    t.ok(existsSync(path.join(rooted(dir), main)), `${unit} runs ${main}, which the installed tree has`);
  }

  // Offline checks of the installed units, their paths moved under the scratch root.
  const units = rootedUnits(root, path.join(root, 'verify'));
  const verify = spawnSync('systemd-analyze', ['verify', '--man=no', ...units], { encoding: 'utf8' });
  t.equal(verify.status, 0, verify.stderr);
  t.equal(verify.stderr.trim(), '', 'systemd-analyze verify has nothing to say');
  const stated = /exposure of\s+\*\*([\d.]+)\*\* \(api, engine, worker, worker@[^)]*\) and\s+\*\*([\d.]+)\*\* \(migrate\)/.exec(
    readFileSync(path.join(repoRoot, 'deploy/README.md'), 'utf8'),
  );
  t.ok(stated, 'deploy/README.md states the exposure scores');
  for (const unit of units.filter((u) => u.endsWith('.service'))) {
    const out = spawnSync('systemd-analyze', ['security', '--offline=true', unit], { encoding: 'utf8' });
    const score = Number(/Overall exposure level for \S+: ([\d.]+)/.exec(out.stdout)?.[1]);
    const expected = Number(unit.endsWith('wombat-migrate.service') ? stated?.[2] : stated?.[1]);
    t.equal(score, expected, `${path.basename(unit)}: systemd-analyze security exposure is deploy/README.md's`);
  }

  // The migrate unit's command, as the service user, with the installed environment.
  const migrate = readFileSync(path.join(root, 'etc/systemd/system/wombat-migrate.service'), 'utf8');
  const [bin, ...args] = /^ExecStart=(.*)$/m.exec(migrate)![1]!.split(' ');
  const ids = (flag: string) => Number(execFileSync('id', [flag, user], { encoding: 'utf8' }).trim());
  const run = spawnSync('env', ['-i', ...Object.entries({ ...env, LOG_FORMAT: 'json' }).map(([k, v]) => `${k}=${v}`), rooted(bin!), ...args], {
    cwd: path.join(root, 'opt/wombat'),
    uid: ids('-u'),
    gid: ids('-g'),
    encoding: 'utf8',
    timeout: 120_000,
  });
  t.equal(run.status, 0, `wombat-migrate's ExecStart works as the service user\n${run.stdout}${run.stderr}`);
  t.match(run.stdout, /"msg":"database ready"/);
});

t.test('systemd-analyze is here wherever the suite runs as CI', async (t) => {
  // .ci/run installs Debian's systemd package when the tool is missing.
  if (ci) t.ok(hasTool('systemd-analyze'), 'systemd-analyze is installed');
  else t.pass(hasTool('systemd-analyze') ? 'systemd-analyze is installed' : 'not CI: systemd-analyze may be missing');
});
