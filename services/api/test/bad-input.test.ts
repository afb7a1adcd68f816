import t from 'tap';
import { startTestApi } from './helpers.ts';

/**
 * A generated set of bad inputs for every route in the OpenAPI document: bad ids,
 * wrong query values, unknown fields, wrong JSON types, huge values, malformed
 * JSON, wrong content types. Each must answer 4xx with the JSON error body; none
 * may answer 5xx.
 */
const api = await startTestApi(t);

interface Operation {
  parameters?: { in: string; name: string; schema: Record<string, unknown> }[];
  requestBody?: { content: Record<string, { schema: Record<string, unknown> }> };
}
const doc = (await api.call('GET', '/openapi.json')).body as { paths: Record<string, Record<string, Operation>> };
const NIL = '00000000-0000-4000-8000-000000000000';

// Real ids, so that bad bodies on id routes reach body validation instead of stopping at 404.
const schedule = (await api.call('POST', '/api/schedules', { body: { name: 'fixture', job: 'canary', every: '1h' } })).body;
const run = (await api.call('POST', '/api/tasks/canary', { body: {} })).body.task_id as string;
await api.database.db.updateTable('wombat.runs').set({ state: 'failed', finished_at: new Date() }).where('id', '=', run).execute();

interface Case {
  what: string;
  method: string;
  path: string;
  raw?: string;
  contentType?: string;
}

const badIds = ['abc', '-1', '0', '1.5', '1e400', '99999999999999999999999', `${NIL}x`, "1'; drop table wombat.runs;--", '%00', '%E2%98%83', 'x'.repeat(300)];
const badBodies: [string, string][] = [
  ['malformed JSON', '{'],
  ['truncated JSON', '{"name": "a", '],
  ['JSON array', '[]'],
  ['JSON string', '"hello"'],
  ['JSON number', '42'],
  ['JSON null', 'null'],
  ['unknown field', '{"definitely_not_a_field": 1}'],
  ['deeply nested', `${'{"a":'.repeat(2000)}1${'}'.repeat(2000)}`],
];

function badQueryValues(schema: Record<string, unknown>): string[] {
  if (schema.type === 'integer' || schema.type === 'number') return ['abc', '1.5', '-5', '1e400', '99999999999999999999999'];
  if (schema.format === 'date-time') return ['yesterday', '2026-13-45T99:99:99Z'];
  if (schema.anyOf || schema.enum) return ['not-a-valid-choice'];
  if (schema.pattern) return ['!!!', 'x'.repeat(5000)];
  return [];
}

function fill(path: string): string {
  const id = path.startsWith('/api/schedules/') ? String(schedule.id) : run;
  return path.replace('{id}', id).replace('{type}', 'canary');
}

const cases: Case[] = [];
for (const [template, ops] of Object.entries(doc.paths)) {
  for (const [m, op] of Object.entries(ops)) {
    const method = m.toUpperCase();
    const hasBody = op.requestBody !== undefined;
    const body = hasBody ? '{}' : undefined;
    for (const p of op.parameters ?? []) {
      if (p.in === 'path') {
        const values = p.name === 'type' ? ['nope', 'x'.repeat(300), 'CANARY'] : badIds;
        for (const v of values) cases.push({ what: `bad ${p.name} ${v.slice(0, 20)}`, method, path: fill(template.replace(`{${p.name}}`, v)), ...(body ? { raw: body } : {}) });
      }
      if (p.in === 'query') {
        for (const v of badQueryValues(p.schema)) cases.push({ what: `bad ?${p.name}=${v.slice(0, 20)}`, method, path: `${fill(template)}?${p.name}=${encodeURIComponent(v)}`, ...(body ? { raw: body } : {}) });
      }
    }
    if (method === 'GET') cases.push({ what: 'unknown query parameter', method, path: `${fill(template)}?zzz=1` });
    if (method !== 'GET' && template !== '/openapi.json') {
      for (const [what, raw] of badBodies) {
        // Routes whose body is the job's parameters take any object; an unknown field is caught per job.
        cases.push({ what, method, path: fill(template), raw });
      }
      cases.push({ what: 'text/plain body', method, path: fill(template), raw: 'hello', contentType: 'text/plain' });
      cases.push({ what: 'XML body', method, path: fill(template), raw: '<a/>', contentType: 'application/xml' });
      cases.push({ what: 'body over the size limit', method, path: fill(template), raw: JSON.stringify({ name: 'x'.repeat(2_000_000) }) });
      const props = op.requestBody?.content['application/json']?.schema.properties as Record<string, Record<string, unknown>> | undefined;
      for (const name of Object.keys(props ?? {})) {
        for (const v of [{ nested: [1, 2, 3] }, 'x'.repeat(100_000), 1e308, -1]) {
          cases.push({ what: `body.${name} = ${JSON.stringify(v).slice(0, 20)}`, method, path: fill(template), raw: JSON.stringify({ [name]: v }) });
        }
      }
    }
  }
}

t.test(`${cases.length} generated bad requests all answer 4xx with an error body, never 5xx`, async (t) => {
  t.ok(cases.length > 300, 'the generator covers the routes');
  const wrong: string[] = [];
  for (const c of cases) {
    const res = await fetch(api.url + c.path, {
      method: c.method,
      headers: { authorization: 'Bearer admin-token-for-tests-0123456789', ...(c.raw !== undefined ? { 'content-type': c.contentType ?? 'application/json' } : {}) },
      ...(c.raw !== undefined ? { body: c.raw } : {}),
    });
    const text = await res.text();
    let body: { error?: { code?: string; message?: string } } = {};
    try {
      body = JSON.parse(text);
    } catch {
      // reported below
    }
    const ok = res.status >= 400 && res.status < 500 && typeof body.error?.code === 'string' && typeof body.error?.message === 'string';
    if (!ok) wrong.push(`${c.method} ${c.path.slice(0, 80)} (${c.what}): ${res.status} ${text.slice(0, 200)}`);
  }
  t.same(wrong, [], 'every bad request answered 4xx with {error: {code, message}}');
});

t.test('an unknown route answers 404 with the same error body', async (t) => {
  const res = await api.call('GET', '/api/nothing-here');
  t.equal(res.status, 404);
  t.equal(res.body.error.code, 'route_not_found');
});

t.test('bad input leaves stored data untouched', async (t) => {
  const runs = await api.database.db.selectFrom('wombat.runs').select(['id', 'state']).execute();
  t.same(runs, [{ id: run, state: 'failed' }], 'no run was created or changed by any bad request');
  const after = (await api.call('GET', `/api/schedules/${schedule.id}`)).body;
  t.same(after, schedule, 'the schedule is unchanged');
});
