import t from 'tap';
import { textProblem, unstorableText } from '@wombat/core/platform';
import { checkJobParams } from '@wombat/core/jobs';
import { validateScheduleInput } from '@wombat/core/schedules';

t.test('textProblem finds NUL and lone surrogates, and passes well-formed text', async (t) => {
  t.match(textProblem('a\u0000'), /NUL/);
  t.match(textProblem('\ud800'), /lone UTF-16 surrogate/);
  t.match(textProblem('x\udfffy'), /lone UTF-16 surrogate/);
  t.match(textProblem('\ude00\ud83d'), /lone/, 'a pair in the wrong order is two lone surrogates');
  t.equal(textProblem('🚀 ok'), undefined);
  t.equal(textProblem(''), undefined);
});

t.test('unstorableText checks keys as well as values, at any depth, and says where', async (t) => {
  t.equal(unstorableText({ a: [1, 'b', { c: 'd' }] }, 'body'), undefined);
  t.match(unstorableText({ a: { 'k\u0000': 1 } }, 'body'), /^body\.a has a key "k\\u0000" that contains a NUL/);
  t.match(unstorableText({ a: ['ok', '\ud800'] }, 'body'), /^body\.a\[1\] contains a lone/);
});

t.test('job params and schedule input refuse them too (the CLI and the engine use these)', async (t) => {
  const bad = checkJobParams('backtest', { strategy: 'ma-crossover', exchange: 'upbit', symbols: ['KRW-BTC'], from: '2024-01-01T00:00:00Z', to: '2024-02-01T00:00:00Z', options: { 'a\u0000b': 1 } });
  t.equal(bad.ok, false);
  t.match(!bad.ok && bad.problems[0], /params\.options has a key/);
  const named = validateScheduleInput({ name: 'x\ud800', job: 'canary', every: '1h' });
  t.equal(named.ok, false);
  t.match(!named.ok && named.problems.join(), /name contains a lone UTF-16 surrogate/);
});
