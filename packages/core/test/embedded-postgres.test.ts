import t from 'tap';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { ConfigError, EMBEDDED_DATABASE, freePort, isProcessAlive, resolveDatabase, startEmbeddedPostgres } from '@wombat/core/platform';
import { testLogger } from '@wombat/core/testing';

async function query(url: string): Promise<string> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql<{ db: string }[]>`select current_database() as db`;
    return row!.db;
  } finally {
    await sql.end();
  }
}

const dir = mkdtempSync(path.join(tmpdir(), 'wombat-embedded-'));
// PostgreSQL runs as its own user when Wombat runs as root: it must reach the directory.
chmodSync(dir, 0o755);
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const dataDir = path.join(dir, 'pg');

t.test('DATABASE_URL=embedded starts a real PostgreSQL under the data directory, which stops with no process left', async (t) => {
  const port = await freePort();
  const db = await resolveDatabase({ databaseUrl: EMBEDDED_DATABASE, embeddedDir: dataDir, embeddedPort: port, log: testLogger() });
  t.ok(db.embedded);
  t.equal(await query(db.url), 'wombat');
  const pid = db.embedded!.pid;
  t.ok(isProcessAlive(pid));

  // A second process joins the running server instead of fighting over the directory.
  const joined = await startEmbeddedPostgres({ dir: dataDir, port: await freePort(), log: testLogger() });
  t.equal(joined.pid, pid);
  t.equal(joined.owned, false);
  await joined.stop();
  await joined.release();
  t.ok(isProcessAlive(pid), 'a joiner does not stop the server it did not start');

  await db.stop();
  t.notOk(isProcessAlive(pid), 'the owner stops it');
});

t.test('a server orphaned by a killed process is claimed by the next start and stopped', async (t) => {
  const port = await freePort();
  const script = `
    import { startEmbeddedPostgres } from '@wombat/core/platform';
    import { testLogger } from '@wombat/core/testing';
    const pg = await startEmbeddedPostgres({ dir: ${JSON.stringify(dataDir)}, port: ${port}, log: testLogger() });
    console.log('READY ' + pg.pid);
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: import.meta.dirname, stdio: ['ignore', 'pipe', 'inherit'] });
  const pid = await new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      const m = /READY (\d+)/.exec(String(d));
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (code) => reject(new Error(`child exited ${code}`)));
  });
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  t.ok(isProcessAlive(pid), 'PostgreSQL outlives the killed process');

  const adopted = await startEmbeddedPostgres({ dir: dataDir, port: await freePort(), log: testLogger() });
  t.equal(adopted.pid, pid);
  t.equal(adopted.owned, true, 'its owner is gone: the finder owns it now');
  t.equal(await query(adopted.url), 'wombat');
  await adopted.release();
  t.notOk(isProcessAlive(pid));
});

/**
 * A process of its own that uses the embedded server as a script does: it prints
 * what it found, then obeys lines on stdin (`connect`: hold a connection open;
 * `disconnect`; `release`: release the server and exit).
 */
function user(t: { teardown(fn: () => unknown): void }, port: number) {
  const script = `
    import postgres from 'postgres';
    import readline from 'node:readline';
    import { resolveDatabase } from '@wombat/core/platform';
    import { testLogger } from '@wombat/core/testing';
    const db = await resolveDatabase({ databaseUrl: 'embedded', embeddedDir: ${JSON.stringify(dataDir)}, embeddedPort: ${port}, log: testLogger() });
    console.log('READY ' + JSON.stringify({ pid: db.embedded.pid, owned: db.embedded.owned }));
    let sql;
    for await (const line of readline.createInterface({ input: process.stdin })) {
      if (line === 'connect') { sql = postgres(db.url, { max: 1 }); await sql\`select 1\`; }
      if (line === 'disconnect') { await sql.end(); sql = undefined; }
      if (line === 'release') { await db.stop(); process.exit(0); }
      console.log('DONE ' + line);
    }
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: import.meta.dirname, stdio: ['pipe', 'pipe', 'inherit'] });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let out = '';
  const waiters: Array<() => void> = [];
  child.stdout.on('data', (d: Buffer) => {
    out += String(d);
    for (const w of waiters.splice(0)) w();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  const waitFor = async (re: RegExp): Promise<RegExpExecArray> => {
    for (;;) {
      const m = re.exec(out);
      if (m) return m;
      if (child.exitCode !== null) throw new Error(`user process exited ${child.exitCode}: ${out}`);
      await Promise.race([new Promise<void>((r) => waiters.push(r)), exited]);
    }
  };
  return {
    async ready(): Promise<{ pid: number; owned: boolean }> {
      return JSON.parse((await waitFor(/READY (.*)\n/))[1]!) as { pid: number; owned: boolean };
    },
    async send(line: 'connect' | 'disconnect'): Promise<void> {
      child.stdin.write(`${line}\n`);
      await waitFor(new RegExp(`DONE ${line}\n`));
      out = out.replace(`DONE ${line}\n`, '');
    },
    async release(): Promise<number | null> {
      child.stdin.write('release\n');
      return exited;
    },
  };
}

t.test('a second process borrows the running server and leaves it running when it exits; only the starter stops it', async (t) => {
  const starter = user(t, await freePort());
  const started = await starter.ready();
  t.equal(started.owned, true, 'the process that started it owns it');

  const borrower = user(t, await freePort());
  const borrowed = await borrower.ready();
  t.equal(borrowed.pid, started.pid, 'the same server');
  t.equal(borrowed.owned, false, 'borrowed, not owned');
  t.equal(await borrower.release(), 0);
  t.ok(isProcessAlive(started.pid), 'the borrower did not stop it');
  t.equal(await query(`postgres://postgres:wombat@127.0.0.1:${readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[3]}/wombat`), 'wombat', 'it still answers');

  t.equal(await starter.release(), 0);
  t.notOk(isProcessAlive(started.pid), 'the starter stopped it');
  t.notOk(existsSync(`${dataDir}.owner`), 'no owner left recorded');
});

t.test('an owner leaving while a borrower is connected leaves the server running; the borrower, last out, stops it', async (t) => {
  const starter = user(t, await freePort());
  const { pid } = await starter.ready();
  const borrower = user(t, await freePort());
  t.equal((await borrower.ready()).owned, false);
  await borrower.send('connect');

  t.equal(await starter.release(), 0);
  t.ok(isProcessAlive(pid), 'not pulled from under a connected client');
  t.notOk(existsSync(`${dataDir}.owner`), 'an orphan now: its owner is gone');

  await borrower.send('disconnect');
  t.equal(await borrower.release(), 0);
  t.notOk(isProcessAlive(pid), 'the last one out stopped the orphan');
});

t.test('an owner whose pid now belongs to another process is recognised as gone', async (t) => {
  const pg = await startEmbeddedPostgres({ dir: dataDir, port: await freePort(), log: testLogger() });
  // The pid of a live process (pid 1), started at another moment than the one recorded.
  writeFileSync(`${dataDir}.owner`, JSON.stringify({ pid: 1, startTicks: -1 }));
  t.equal(pg.owned, false);
  const again = await startEmbeddedPostgres({ dir: dataDir, port: await freePort(), log: testLogger() });
  t.equal(again.owned, true, 'claimed as an orphan');
  await again.release();
  t.notOk(isProcessAlive(pg.pid));
});

t.test('DATABASE_URL wins and nothing is started', async (t) => {
  const db = await resolveDatabase({ databaseUrl: 'postgres://u@db.example:5432/x', embeddedDir: dataDir, embeddedPort: 1, log: testLogger() });
  t.equal(db.url, 'postgres://u@db.example:5432/x');
  t.equal(db.embedded, undefined);
});

t.test('without DATABASE_URL nothing starts: a one-line configuration error says to set it', async (t) => {
  const err = await resolveDatabase({ databaseUrl: undefined, embeddedDir: path.join(dir, 'never'), embeddedPort: 1, log: testLogger() }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof ConfigError);
  t.match((err as Error).message, /^invalid configuration: DATABASE_URL is not set: set it to .*DATABASE_URL=embedded/);
  t.notMatch((err as Error).message, /\n/, 'one line');
  t.notOk(existsSync(path.join(dir, 'never')), 'no directory made');
});

t.test('a non-empty directory without PostgreSQL data is refused and left exactly as it was', async (t) => {
  const parquet = path.join(dir, 'data');
  mkdirSync(path.join(parquet, 'upbit'), { recursive: true });
  writeFileSync(path.join(parquet, 'upbit', '2026.parquet'), 'candles');
  const err = await startEmbeddedPostgres({ dir: parquet, port: await freePort(), log: testLogger() }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.match(err, { code: 'embedded_postgres_dir_not_empty' });
  t.match((err as Error).message, /not empty and holds no PostgreSQL data.*EMBEDDED_PG_DIR/);
  t.equal(readFileSync(path.join(parquet, 'upbit', '2026.parquet'), 'utf8'), 'candles', 'the files are untouched');
  t.same(readdirSync(parquet), ['upbit']);
  t.same(readdirSync(dir).filter((f) => f.startsWith('data.')), [], 'no leftovers beside it');
});

t.test('an empty directory made beforehand is initialised in place', async (t) => {
  const empty = path.join(dir, 'empty');
  mkdirSync(empty, { mode: 0o755 });
  const pg = await startEmbeddedPostgres({ dir: empty, port: await freePort(), log: testLogger() });
  t.teardown(() => pg.stop());
  t.equal(await query(pg.url), 'wombat');
  t.ok(existsSync(path.join(empty, 'PG_VERSION')));
  t.equal(statSync(empty).mode & 0o777, 0o700, 'PostgreSQL wants its directory private');
});

t.test('a .wombat directory left private (mode 0700) by an older version still serves the data directory in place', async (t) => {
  const dotWombat = path.join(dir, 'checkout', '.wombat');
  mkdirSync(path.dirname(dotWombat), { mode: 0o755 });
  mkdirSync(dotWombat, { mode: 0o700 });
  const pg = await startEmbeddedPostgres({ dir: path.join(dotWombat, 'pg'), port: await freePort(), log: testLogger() });
  t.teardown(() => pg.stop());
  t.equal(pg.dir, path.join(dotWombat, 'pg'), 'not moved elsewhere');
  t.equal(await query(pg.url), 'wombat');
  // As root the server runs as another user, who must be able to enter .wombat.
  if (process.getuid?.() === 0) t.equal(statSync(dotWombat).mode & 0o777, 0o755, 'opened to the server user');
  else t.equal(statSync(path.join(dotWombat, 'pg')).uid, process.getuid?.(), 'run as the invoking user');
});
