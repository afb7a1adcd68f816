import t from 'tap';
import { fourWriters } from './parquet-writers.ts';

// Real processes and fsyncs: on a busy machine a round takes tens of seconds. Never a timing assertion.
t.setTimeout(600_000);

t.test('four processes merging overlapping ranges into one file, repeatedly, keep exactly the union (lock directory)', async (t) => {
  await fourWriters(t, 3);
});

t.test('the same with a stored file of 100,000 rows: writes after its end append, the others rewrite it', async (t) => {
  await fourWriters(t, 1, undefined, 100_000);
});
