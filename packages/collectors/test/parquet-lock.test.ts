import t from 'tap';
import { fourWriters } from './parquet-writers.ts';

// Real processes and fsyncs: on a busy machine a round takes tens of seconds. Never a timing assertion.
t.setTimeout(600_000);

t.test('four processes merging overlapping ranges into one file, repeatedly, keep exactly the union (lock directory)', async (t) => {
  await fourWriters(t, 3);
});
