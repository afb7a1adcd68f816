import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { childEnv, testLogger } from '@wombat/core/testing';
import { createCollectors, type CollectorsOptions, type Candle } from '@wombat/collectors';
import { startFakeExchange, type FakeExchange, type FakeExchangeOptions } from '@wombat/collectors/testing';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export async function tempDataRoot(t: Teardown): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'wombat-collectors-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export async function fakeExchange(t: Teardown, opts: FakeExchangeOptions = {}): Promise<FakeExchange> {
  const fake = await startFakeExchange(opts);
  t.teardown(() => fake.close());
  return fake;
}

export function collectorsFor(t: Teardown, fake: FakeExchange, opts: Partial<CollectorsOptions> & { dataRoot: string }) {
  const c = createCollectors({
    storage: 'parquet',
    upbit: { baseUrl: fake.url, requestsPerSecond: 10 },
    log: testLogger('collectors'),
    retryBaseDelayMs: 20,
    requestTimeoutMs: 2000,
    ...opts,
  });
  t.teardown(() => c.close());
  return c;
}

/** Candles as comparable plain rows. */
export function rows(candles: Candle[]): string[] {
  return candles.map((c) => `${c.time.toISOString()} ${c.open} ${c.high} ${c.low} ${c.close} ${c.volume} ${c.quoteVolume}`);
}

/** Runs a script with node and a clean environment (JSON logs at warn); resolves with its exit code and output. */
export function runNode(file: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file, ...args], { env: childEnv({ LOG_FORMAT: 'json', LOG_LEVEL: 'warn', ...env }), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}
