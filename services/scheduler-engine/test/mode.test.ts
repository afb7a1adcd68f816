import t from 'tap';
import { AppError } from '@wombat/core/platform';
import { createEngineMode, type EngineMode } from '../src/mode.ts';

function walk(path: EngineMode[]) {
  const m = createEngineMode();
  for (const next of path) m.setMode(next);
  return m;
}

t.test('an engine goes idle -> starting -> running, passes back and forth, then stopping -> stopped', async (t) => {
  const m = createEngineMode();
  t.equal(m.mode, 'idle');
  t.notOk(m.following());
  const seen: [EngineMode, boolean][] = [];
  for (const next of ['starting', 'running', 'publishing', 'publishing-again', 'running', 'publishing', 'running', 'stopping', 'stopped'] as const) {
    m.setMode(next);
    seen.push([m.mode, m.following()]);
  }
  t.same(seen, [
    ['starting', false],
    ['running', true],
    ['publishing', true],
    ['publishing-again', true],
    ['running', true],
    ['publishing', true],
    ['running', true],
    ['stopping', false],
    ['stopped', false],
  ]);
});

t.test('stop is legal from every state before it, including mid-start and mid-pass', async (t) => {
  for (const path of [[], ['starting'], ['starting', 'running'], ['starting', 'running', 'publishing'], ['starting', 'running', 'publishing', 'publishing-again']] as EngineMode[][]) {
    const m = walk(path);
    m.setMode('stopping');
    t.equal(m.mode, 'stopping', `from ${path.at(-1) ?? 'idle'}`);
  }
});

t.test('an illegal transition throws, names both modes and leaves the mode as it was', async (t) => {
  const cases: [EngineMode[], EngineMode][] = [
    [[], 'running'], // never started
    [['starting'], 'publishing'], // a pass before the schedules are read
    [['starting', 'running'], 'starting'], // started twice
    [['starting', 'running'], 'publishing-again'], // "again" with no pass in flight
    [['starting', 'running', 'publishing', 'publishing-again'], 'publishing'], // the next pass starts from running
    [['stopping'], 'running'], // a pass ending after stop must not resume
    [['stopping', 'stopped'], 'starting'], // no restart
  ];
  for (const [path, next] of cases) {
    const m = walk(path);
    const before = m.mode;
    const err = (() => {
      try {
        m.setMode(next);
      } catch (e) {
        return e;
      }
    })();
    t.ok(err instanceof AppError && err.code === 'illegal_engine_transition', `${before} -> ${next} refused`);
    t.equal((err as Error).message, `the engine cannot go from ${before} to ${next}`);
    t.equal(m.mode, before);
  }
});
