// Runs: the history, filtered by schedule, job, state, trigger and time; an admin empties a queue from here.
import { html, useState } from '/ui/vendor/preact-htm.js';
import { api, useApi } from '../client.js';
import { ErrorBox, State, errText, fmtMs, fmtUtc } from '../format.js';

function queryOf(route) {
  return Object.fromEntries(new URLSearchParams(route.split('?')[1] ?? ''));
}

const choice = (name, value, onInput, values) =>
  html`<select name=${name} value=${value} onInput=${onInput}>
    <option value="">any</option>${values.map((v) => html`<option value=${v}>${v}</option>`)}
  </select>`;

/** Runs a page shows. */
const PAGE = 100;

/** States whose runs one click may cancel (POST /api/runs/cancel); no state filter means queued. */
const CANCELLABLE = ['waiting', 'held', 'queued', 'running', 'retrying'];

/** `meta`: the api's names (/api/meta) the job, state and trigger filters offer. */
export function Runs({ route, meta, role }) {
  const initial = queryOf(route);
  const [filters, setFilters] = useState({
    schedule: initial.schedule ?? '',
    job: initial.job ?? '',
    state: initial.state ?? '',
    trigger: initial.trigger ?? '',
    since: '',
    until: '',
  });
  // Older pages by cursor (starting_after): the ids each page started after, newest page first.
  const [cursors, setCursors] = useState([]);
  const cursor = cursors.at(-1);
  const schedules = useApi('/api/schedules');
  const qs = new URLSearchParams({ limit: String(PAGE) });
  for (const [k, v] of Object.entries(filters)) {
    if (!v) continue;
    qs.set(k, k === 'since' || k === 'until' ? new Date(v).toISOString() : v);
  }
  if (cursor) qs.set('starting_after', cursor);
  const { data, error, reload } = useApi(`/api/runs?${qs}`, 3000);
  const [message, setMessage] = useState(null);
  const [actionError, setActionError] = useState(null);
  const cancelState = filters.state || 'queued';
  const canCancel = role === 'admin' && filters.job && CANCELLABLE.includes(cancelState);
  async function cancelAll() {
    if (!confirm(`Cancel every ${cancelState} run of ${filters.job}? Their jobs leave the queue.`)) return;
    setActionError(null);
    try {
      const res = await api('POST', '/api/runs/cancel', { job: filters.job, state: cancelState });
      setMessage(`cancelled ${res.cancelled} ${cancelState} run(s) of ${res.job}`);
      reload();
    } catch (err) {
      setActionError(err);
    }
  }
  const set = (k) => (e) => {
    const v = e.target.value;
    // Functional update: two quick changes must not undo each other. Other filters: the newest page again.
    setFilters((old) => ({ ...old, [k]: v }));
    setCursors([]);
  };
  const older = () => data?.next_starting_after && setCursors((c) => [...c, data.next_starting_after]);
  const newer = () => setCursors((c) => c.slice(0, -1));
  return html`
    <h1>Runs</h1>
    <div class="filters" data-testid="run-filters">
      <label>schedule<select name="schedule" value=${filters.schedule} onInput=${set('schedule')}><option value="">any</option>
        ${(schedules.data?.schedules ?? []).map((s) => html`<option value=${String(s.id)}>${s.name}</option>`)}</select></label>
      <label>job${choice('job', filters.job, set('job'), meta.job_types)}</label>
      <label>state${choice('state', filters.state, set('state'), meta.run_states)}</label>
      <label>trigger${choice('trigger', filters.trigger, set('trigger'), meta.run_triggers)}</label>
      <label>created from<input type="datetime-local" name="since" value=${filters.since} onInput=${set('since')} /></label>
      <label>created before<input type="datetime-local" name="until" value=${filters.until} onInput=${set('until')} /></label>
    </div>
    ${canCancel &&
    html`<div class="filters">
      <button class="danger" data-testid="cancel-runs" onClick=${cancelAll}>Cancel all ${cancelState} ${filters.job} runs</button>
    </div>`}
    <${ErrorBox} error=${actionError ?? error} />
    ${message && html`<p class="note" data-testid="message">${message}</p>`}
    ${data &&
    html`<p class="note" data-testid="runs-page">
      ${data.total} runs match; ${cursors.length === 0 ? 'newest' : `page ${cursors.length + 1},`} ${data.runs.length} shown.
      <button data-testid="runs-newer" disabled=${cursors.length === 0} onClick=${newer}>Newer</button>
      <button data-testid="runs-older" disabled=${!data.has_more} onClick=${older}>Older</button>
    </p>`}
    <table data-testid="runs">
      <tr><th>run</th><th>job</th><th>trigger</th><th>state</th><th>scheduled</th><th>started</th><th>finished</th>
        <th class="num">lateness</th><th class="num">duration</th><th class="num">attempts</th><th>error</th></tr>
      ${(data?.runs ?? []).map(
        (r) => html`<tr data-run=${r.id}>
          <td class="mono"><a href=${`#/runs/${r.id}`}>${r.id.slice(0, 8)}</a></td><td>${r.job}</td><td>${r.trigger}</td>
          <td><${State} state=${r.state} /></td>
          <td class="mono">${fmtUtc(r.scheduled_for)}</td><td class="mono">${fmtUtc(r.started_at)}</td><td class="mono">${fmtUtc(r.finished_at)}</td>
          <td class="num">${fmtMs(r.start_lateness_ms)}</td><td class="num">${fmtMs(r.duration_ms)}</td><td class="num">${r.attempts}</td>
          <td>${errText(r.error)}</td>
        </tr>`,
      )}
    </table>`;
}
