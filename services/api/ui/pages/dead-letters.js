// Dead letters: runs whose last attempt failed, to requeue or purge.
import { html, useState } from '/ui/vendor/preact-htm.js';
import { api, useApi } from '../client.js';
import { ErrorBox, errText, fmtUtc } from '../format.js';

export function DeadLetters({ role }) {
  const { data, error, reload } = useApi('/api/dead-letters?limit=200', 5000);
  const [selected, setSelected] = useState(new Set());
  const [hours, setHours] = useState('168');
  const [message, setMessage] = useState(null);
  const [actionError, setActionError] = useState(null);
  const admin = role === 'admin';
  async function act(fn) {
    setActionError(null);
    try {
      setMessage(await fn());
      setSelected(new Set());
      reload();
    } catch (err) {
      setActionError(err);
    }
  }
  const toggle = (id) => {
    const s = new Set(selected);
    s.has(id) ? s.delete(id) : s.add(id);
    setSelected(s);
  };
  const rows = data?.dead_letters ?? [];
  const requeue = (body) => api('POST', '/api/dead-letters/requeue', body);
  const requeueSelected = () => act(async () => `requeued ${(await requeue({ ids: [...selected] })).count}`);
  const requeueAll = () => confirm('Requeue every dead letter?') && act(async () => `requeued ${(await requeue({ all: true })).count}`);
  const purge = () =>
    confirm(`Delete dead letters older than ${hours} h?`) &&
    act(async () => `purged ${JSON.stringify(await api('POST', '/api/dead-letters/purge', { older_than_hours: Number(hours) }))}`);
  const requeueOne = (id) => act(async () => `requeued as ${(await api('POST', `/api/dead-letters/${id}/requeue`, {})).task_id}`);
  return html`
    <h1>Dead letters</h1>
    <p class="note">Runs whose last attempt failed (or whose worker was lost), not yet requeued.</p>
    <${ErrorBox} error=${actionError ?? error} />
    ${message && html`<p class="note" data-testid="message">${message}</p>`}
    ${admin &&
    html`<div class="filters">
      <button disabled=${selected.size === 0} onClick=${requeueSelected}>Requeue selected (${selected.size})</button>
      <button disabled=${rows.length === 0} onClick=${requeueAll}>Requeue all</button>
      <label>older than (hours)<input type="number" min="0" value=${hours} onInput=${(e) => setHours(e.target.value)} style="width: 7rem" /></label>
      <button class="danger" onClick=${purge}>Purge</button>
    </div>`}
    <table data-testid="dead-letters">
      <tr>${admin && html`<th></th>`}<th>run</th><th>job</th><th>failed at</th><th class="num">attempts</th><th>error</th>${admin && html`<th></th>`}</tr>
      ${rows.length === 0 && html`<tr><td colspan="7" class="note">No dead letters.</td></tr>`}
      ${rows.map(
        (r) => html`<tr data-run=${r.id}>
          ${admin && html`<td><input type="checkbox" checked=${selected.has(r.id)} onChange=${() => toggle(r.id)} /></td>`}
          <td class="mono"><a href=${`#/runs/${r.id}`}>${r.id.slice(0, 8)}</a></td><td>${r.job}</td><td class="mono">${fmtUtc(r.finished_at)}</td>
          <td class="num">${r.attempts}</td><td>${errText(r.error)}</td>
          ${admin && html`<td><button onClick=${() => requeueOne(r.id)}>Requeue</button></td>`}
        </tr>`,
      )}
    </table>`;
}
