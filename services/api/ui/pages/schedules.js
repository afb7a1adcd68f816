// Schedules: the list with its actions, and the form to create or edit one.
import { html, useState, useEffect } from '/ui/vendor/preact-htm.js';
import { api, useApi } from '../client.js';
import { ErrorBox, State, fmtMs, fmtTime, fmtUtc } from '../format.js';
import { BackfillForm } from './backfill.js';
import { ScheduleGraph } from './schedule-graph.js';

/** The form's places for errors: a field of the api's schedule body, or the trigger for any of its three kinds. */
const PLACES = {
  name: 'name',
  job: 'job',
  cron: 'trigger',
  every: 'trigger',
  times: 'trigger',
  timezone: 'timezone',
  params: 'params',
  overlap: 'overlap',
  missed: 'missed',
  after: 'after',
  wait_for: 'wait_for',
};

/**
 * Sends each problem of a refused schedule to the field the api names for it
 * (error.issues, or error.field for the whole message); the rest go to the form.
 */
export function problemsByField(err) {
  const out = {};
  const issues = err?.issues ?? (err ? [{ field: err.field ?? null, message: err.message }] : []);
  for (const { field, message } of issues) {
    const key = Object.hasOwn(PLACES, field ?? '') ? PLACES[field] : 'form';
    out[key] = out[key] ? `${out[key]}; ${message}` : message;
  }
  return out;
}

const options = (values) => values.map((v) => html`<option value=${v}>${v}</option>`);
const BLANK = {
  name: '',
  job: 'canary',
  kind: 'cron',
  cron: '*/5 * * * *',
  every: '5m',
  times: '09:00',
  timezone: '',
  params: '{}',
  overlap: 'skip',
  missed: 'once',
  after: '',
  wait_for: '1h',
};

function scheduleBody(f) {
  const body = { name: f.name.trim(), job: f.job, timezone: f.timezone.trim() || undefined, overlap: f.overlap, missed: f.missed };
  body.after = f.after.split(',').map((s) => s.trim()).filter(Boolean);
  if (f.wait_for.trim()) body.wait_for = /^\d+$/.test(f.wait_for.trim()) ? Number(f.wait_for.trim()) : f.wait_for.trim();
  if (f.kind === 'cron') body.cron = f.cron.trim();
  else if (f.kind === 'every') body.every = f.every.trim();
  else body.times = f.times.split(',').map((s) => s.trim()).filter(Boolean);
  return body;
}

function ScheduleForm({ initial, meta, onDone, onCancel }) {
  const [f, setF] = useState(initial ?? BLANK);
  const [errors, setErrors] = useState({});
  const [preview, setPreview] = useState(null);
  const [busy, setBusy] = useState(false);
  const set = (k) => (e) => {
    const v = e.target.value;
    setF((old) => ({ ...old, [k]: v }));
  };

  // Live preview of the next occurrences, with the same validation the save will apply.
  useEffect(() => {
    const t = setTimeout(async () => {
      const body = scheduleBody(f);
      delete body.name;
      delete body.job;
      delete body.after;
      delete body.wait_for;
      try {
        setPreview({ ok: true, ...(await api('POST', '/api/schedules/preview?count=5', body)) });
      } catch (err) {
        setPreview({ ok: false, problems: problemsByField(err) });
      }
    }, 250);
    return () => clearTimeout(t);
  }, [f.kind, f.cron, f.every, f.times, f.timezone]);

  async function submit(e) {
    e.preventDefault();
    let params;
    try {
      params = JSON.parse(f.params || '{}');
    } catch (err) {
      setErrors({ params: `params is not valid JSON: ${err.message}` });
      return;
    }
    setBusy(true);
    try {
      const body = { ...scheduleBody(f), params };
      if (initial?.id) await api('PUT', `/api/schedules/${initial.id}`, body);
      else await api('POST', '/api/schedules', body);
      setErrors({});
      onDone();
    } catch (err) {
      setErrors(problemsByField(err));
    } finally {
      setBusy(false);
    }
  }

  const fieldError = (k) => (errors[k] ? html`<div class="field-error" data-error-for=${k}>${errors[k]}</div>` : null);
  return html`<form class="grid" onSubmit=${submit} data-testid="schedule-form">
    <label for="f-name">Name</label><div><input id="f-name" name="name" value=${f.name} onInput=${set('name')} />${fieldError('name')}</div>
    <label for="f-job">Job</label>
    <div><select id="f-job" name="job" value=${f.job} onInput=${set('job')}>${options(meta.job_types)}</select>${fieldError('job')}</div>
    <label for="f-kind">Trigger</label>
    <div>
      <select id="f-kind" name="kind" value=${f.kind} onInput=${set('kind')} style="max-width: 10rem">
        <option value="cron">cron pattern</option><option value="every">fixed interval</option><option value="times">times of day</option>
      </select>
      ${f.kind === 'cron' &&
      html`<input name="cron" value=${f.cron} onInput=${set('cron')} placeholder="minute hour day month weekday, e.g. 0 9 * * *" />`}
      ${f.kind === 'every' && html`<input name="every" value=${f.every} onInput=${set('every')} placeholder="30s, 5m, 1h, 1d" />`}
      ${f.kind === 'times' && html`<input name="times" value=${f.times} onInput=${set('times')} placeholder="09:00, 18:00" />`}
      ${fieldError('trigger')}
    </div>
    <label for="f-tz">Time zone</label>
    <div>
      <input id="f-tz" name="timezone" value=${f.timezone} onInput=${set('timezone')} placeholder="default: the api's TZ, e.g. Asia/Seoul" />
      ${fieldError('timezone')}
    </div>
    <label for="f-params">Parameters (JSON)</label>
    <div><textarea id="f-params" name="params" value=${f.params} onInput=${set('params')}></textarea>${fieldError('params')}</div>
    <label for="f-overlap">Overlap</label>
    <div>
      <select id="f-overlap" name="overlap" value=${f.overlap} onInput=${set('overlap')}>${options(meta.overlap_policies)}</select>${fieldError('overlap')}
    </div>
    <label for="f-missed">Missed runs</label>
    <div><select id="f-missed" name="missed" value=${f.missed} onInput=${set('missed')}>${options(meta.missed_policies)}</select>${fieldError('missed')}</div>
    <label for="f-after">Waits for</label>
    <div>
      <input id="f-after" name="after" value=${f.after} onInput=${set('after')}
        placeholder="schedules whose runs of the same period must complete first, e.g. collect-symbols" />
      ${fieldError('after')}
    </div>
    <label for="f-wait-for">At most</label>
    <div>
      <input id="f-wait-for" name="wait_for" value=${f.wait_for} onInput=${set('wait_for')} placeholder="seconds or 90m, 1h" style="max-width: 10rem" />
      ${fieldError('wait_for')}
    </div>
    <label>Next runs</label>
    <div data-testid="preview">
      ${preview === null && html`<span class="note">…</span>`}
      ${preview?.ok === true &&
      html`<div class="note">${preview.trigger} (${preview.timezone})</div>
        <ol class="mono">
          ${preview.occurrences.map((o) => html`<li>${fmtTime(o, preview.timezone)} ${preview.timezone} · ${fmtUtc(o)}</li>`)}
        </ol>`}
      ${preview?.ok === false && html`<div class="field-error">${Object.values(preview.problems).join('; ')}</div>`}
    </div>
    <span></span>
    <div class="actions">
      <button class="primary" type="submit" disabled=${busy}>${initial?.id ? 'Save' : 'Create schedule'}</button>
      <button type="button" onClick=${onCancel}>Cancel</button>
      ${fieldError('form')}
    </div>
  </form>`;
}

function formFromSchedule(s) {
  const kind = s.cron ? 'cron' : s.every ? 'every' : 'times';
  return {
    id: s.id,
    name: s.name,
    job: s.job,
    kind,
    cron: s.cron ?? '',
    every: s.every ?? '',
    times: (s.times ?? []).join(', '),
    timezone: s.timezone,
    params: JSON.stringify(s.params ?? {}, null, 2),
    overlap: s.overlap,
    missed: s.missed,
    after: (s.after ?? []).join(', '),
    wait_for: String(s.wait_for ?? 3600),
  };
}

export function Schedules({ role, meta }) {
  const status = useApi('/api/scheduler/status', 5000);
  const full = useApi('/api/schedules', 5000);
  const [editing, setEditing] = useState(null);
  const [backfilling, setBackfilling] = useState(null);
  const [message, setMessage] = useState(null);
  const [error, setError] = useState(null);
  const admin = role === 'admin';

  async function act(label, method, path, body) {
    setError(null);
    try {
      const res = await api(method, path, body);
      setMessage(res?.run_id ? html`${label}: run <a href=${`#/runs/${res.run_id}`}>${res.run_id}</a>` : label);
      status.reload();
      full.reload();
    } catch (err) {
      setError(err);
    }
  }
  const byId = new Map((full.data?.schedules ?? []).map((s) => [s.id, s]));
  const rows = status.data?.schedules ?? [];
  return html`
    <h1>Schedules</h1>
    <${ErrorBox} error=${error ?? status.error} />
    ${message && html`<p class="note" data-testid="message">${message}</p>`}
    ${admin && editing === null && html`<p><button class="primary" onClick=${() => setEditing({})}>New schedule</button></p>`}
    ${editing !== null &&
    html`<h2>${editing.id ? `Edit ${editing.name}` : 'New schedule'}</h2>
      <${ScheduleForm}
        initial=${editing.id ? editing : null}
        meta=${meta}
        onDone=${() => {
          setEditing(null);
          setMessage('saved');
          status.reload();
          full.reload();
        }}
        onCancel=${() => setEditing(null)}
      />`}
    ${backfilling !== null &&
    html`<h2>Backfill ${backfilling.name}</h2>
      <${BackfillForm}
        schedule=${backfilling}
        key=${backfilling.id}
        onStarted=${(res) => {
          setBackfilling(null);
          setMessage(html`backfill of ${backfilling.name} started (${res.run} runs): run <a href=${`#/runs/${res.run_id}`}>${res.run_id}</a>`);
        }}
        onCancel=${() => setBackfilling(null)}
      />`}
    <h2>All schedules</h2>
    <table data-testid="schedules">
      <tr><th>name</th><th>job</th><th>trigger</th><th>time zone</th><th>next run (local · UTC)</th><th>last run</th><th>lateness</th><th>status</th>
        ${admin && html`<th>actions</th>`}</tr>
      ${rows.map((s) => {
        const def = byId.get(s.id);
        const last = s.last_run;
        const remove = () =>
          confirm(`Delete schedule ${s.name}? Its runs stay in the history.`) && act(`deleted ${s.name}`, 'DELETE', `/api/schedules/${s.id}`);
        return html`<tr data-schedule=${s.name}>
          <td><a href=${`#/runs?schedule=${s.id}`}>${s.name}</a>${s.built_in ? html` <span class="note">built-in</span>` : null}
            ${def?.after?.length ? html`<div class="note" data-testid="after">after ${def.after.join(', ')}</div>` : null}</td>
          <td>${s.job}</td><td>${s.trigger}</td><td>${s.timezone}</td>
          <td class="mono">${s.next_run_at ? html`${fmtTime(s.next_run_at, s.timezone)}<br />${fmtUtc(s.next_run_at)}` : '–'}</td>
          <td>${last ? html`<a href=${`#/runs/${last.id}`}><${State} state=${last.state} /></a> <span class="note">${fmtUtc(s.last_run_at)}</span>` : '–'}</td>
          <td><${Lateness} runId=${s.last_run?.id} /></td>
          <td>${s.status}${s.paused_reason ? html`<div class="note">${s.paused_reason}</div>` : null}</td>
          ${admin &&
          html`<td><div class="actions">
            ${s.status === 'active'
              ? html`<button onClick=${() => act(`paused ${s.name}`, 'POST', `/api/schedules/${s.id}/pause`, {})}>Pause</button>`
              : html`<button onClick=${() => act(`resumed ${s.name}`, 'POST', `/api/schedules/${s.id}/resume`, {})}>Resume</button>`}
            <button onClick=${() => act(`${s.name} triggered`, 'POST', `/api/schedules/${s.id}/trigger`, {})}>Run now</button>
            <button disabled=${!def} onClick=${() => setBackfilling(def)}>Backfill</button>
            <button disabled=${!def} onClick=${() => setEditing(formFromSchedule(def))}>Edit</button>
            <button class="danger" onClick=${remove}>Delete</button>
          </div></td>`}
        </tr>`;
      })}
    </table>
    <h2>Dependencies</h2>
    <${ScheduleGraph} />`;
}

/** A run's start lateness, read from the run itself (the status route gives only its id). */
function Lateness({ runId }) {
  const { data } = useApi(runId ? `/api/runs/${runId}` : null);
  return data ? fmtMs(data.start_lateness_ms) : '–';
}
