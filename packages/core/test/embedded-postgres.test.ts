import t from 'tap';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { ConfigError, EMBEDDED_DATABASE, freePort, isProcessAlive, resolveDatabase, startEmbeddedPostgres } from '@wombat/core';
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
  const db = await resolveDatabase({ databaseUrl: EMBEDDED_DATABASE, embeddedDir: dataDir, embeddedPort: port, log: testLogger(), adopt: false });
  t.ok(db.embedded);
  t.equal(await query(db.url), 'wombat');
  const pid = db.embedded!.pid;
  t.ok(isProcessAlive(pid));

  // A second process joins the running server instead of fighting over the directory.
  const joined = await startEmbeddedPostgres({ dir: dataDir, port: await freePort(), log: testLogger() });
  t.equal(joined.pid, pid);
  t.equal(joined.owned, false);
  await joined.stop();
  t.ok(isProcessAlive(pid), 'a joiner does not stop the server it did not start');

  await db.stop();
  t.notOk(isProcessAlive(pid), 'the owner stops it');
});

t.test('a server orphaned by a killed process is adopted by the next start and stopped', async (t) => {
  const port = await freePort();
  const script = `
    import { startEmbeddedPostgres } from '@wombat/core';
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

  const adopted = await startEmbeddedPostgres({ dir: dataDir, port: await freePort(), log: testLogger(), adopt: true });
  t.equal(adopted.pid, pid);
  t.equal(await query(adopted.url), 'wombat');
  await adopted.stop();
  t.notOk(isProcessAlive(pid));
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
