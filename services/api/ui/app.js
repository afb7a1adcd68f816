// Wombat dashboard: pages over the api's own JSON routes (no route of its own does
// anything the api would refuse). Preact + htm, served from the installed packages.
import { html, render, useState, useEffect, useRef, useCallback } from '/ui/vendor/preact-htm.js';

// uPlot is loaded once a chart is drawn, so the tables paint without waiting for it.
let uPlotModule;
const loadUPlot = () => (uPlotModule ??= import('/ui/vendor/uplot.js').then((m) => m.default));

const TOKEN_KEY = 'wombat-token';
const STATES = ['held', 'queued', 'running', 'retrying', 'completed', 'failed', 'cancelled', 'skipped', 'missed'];
const TRIGGERS = ['schedule', 'manual', 'task', 'script', 'fanout', 'cli'];
const STATE_COLOURS = { completed: '#1a7f37', failed: '#c62828', running: '#2c3e9e', retrying: '#b26b00', queued: '#7986cb', held: '#26a69a', skipped: '#9e9e9e', missed: '#616161', cancelled: '#8e24aa' };

// ---- api access -----------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code;
    this.details = body?.error?.details;
  }
}

async function api(method, path, body) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  const parsed = text && (res.headers.get('content-type') ?? '').includes('json') ? JSON.parse(text) : null;
  if (!res.ok) {
    if (res.status === 401 && path !== '/api/whoami') window.dispatchEvent(new CustomEvent('wombat-unauthorized'));
    throw new ApiError(res.status, parsed);
  }
  return parsed;
}

// The page a visitor opens asks for its data while the token check is still on its way.
const prefetched = new Map();
if ((location.hash.slice(1) || '/') === '/') prefetched.set('/api/overview', api('GET', '/api/overview').catch(() => undefined));

/** Loads `path` now and every `everyMs` (0: once); reload() on demand. */
function useApi(path, everyMs = 0) {
  const [state, setState] = useState({ data: null, error: null });
  const load = useCallback(async () => {
    if (!path) return;
    try {
      const early = prefetched.get(path);
      prefetched.delete(path);
      const data = early ? await early : undefined;
      setState({ data: data ?? (await api('GET', path)), error: null });
    } catch (error) {
      setState((s) => ({ data: s.data, error }));
    }
  }, [path]);
  useEffect(() => {
    load();
    if (!everyMs) return undefined;
    const t = setInterval(load, everyMs);
    return () => clearInterval(t);
  }, [load, everyMs]);
  return { ...state, reload: load };
}

// ---- formatting -----------------------------------------------------------

const pad = (n) => String(n).padStart(2, '0');
function fmtTime(iso, timeZone) {
  if (!iso) return '–';
  const d = new Date(iso);
  const parts = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' }).formatToParts(d);
  const p = Object.fromEntries(parts.map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
}
const fmtUtc = (iso) => (iso ? `${fmtTime(iso, 'UTC')}Z` : '–');
function fmtMs(ms) {
  if (ms === null || ms === undefined) return '–';
  const a = Math.abs(ms);
  if (a < 1000) return `${ms} ms`;
  if (a < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  if (a < 7_200_000) return `${(ms / 60_000).toFixed(1)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}
const fmtBytes = (b) => (b === null || b === undefined ? '–' : `${(b / 1048576).toFixed(0)} MiB`);
const pct = (x) => `${(x * 100).toFixed(1)} %`;
const errText = (e) => (e === null || e === undefined ? '' : typeof e === 'string' ? e : e.message ?? JSON.stringify(e));

const State = ({ state }) => html`<span class=${`state state-${state}`} data-state=${state}>${state}</span>`;
const ErrorBox = ({ error }) => (error ? html`<div class="error-box" role="alert">${error.message}</div>` : null);

// ---- charts ---------------------------------------------------------------

function Chart({ opts, data }) {
  const el = useRef(null);
  const plot = useRef(null);
  useEffect(() => {
    let live = true;
    loadUPlot().then((UPlot) => {
      if (!live) return;
      plot.current?.destroy();
      plot.current = new UPlot(opts, data, el.current);
    });
    return () => {
      live = false;
      plot.current?.destroy();
      plot.current = null;
    };
  }, [JSON.stringify(opts.series.map((s) => s.label)), opts.title]);
  useEffect(() => {
    plot.current?.setData(data);
  }, [data]);
  return html`<div class="chart" ref=${el}></div>`;
}

function RunsPerHourChart({ hours }) {
  const xs = hours.map((h) => Date.parse(h.hour) / 1000);
  const shown = STATES.filter((s) => hours.some((h) => h.states[s]));
  if (xs.length === 0 || shown.length === 0) return html`<p class="note">No runs in the last 24 hours.</p>`;
  const data = [xs, ...shown.map((s) => hours.map((h) => h.states[s] ?? 0))];
  const opts = {
    title: 'Runs per hour by state (last 24 h)',
    width: 640,
    height: 220,
    series: [{}, ...shown.map((s) => ({ label: s, stroke: STATE_COLOURS[s], width: 2, points: { show: true } }))],
  };
  return html`<${Chart} opts=${opts} data=${data} />`;
}

function LatenessChart({ hours }) {
  const rows = hours.filter((h) => h.lateness_p50_ms !== null);
  if (rows.length === 0) return html`<p class="note">No scheduled run has started in the last 24 hours.</p>`;
  const data = [rows.map((h) => Date.parse(h.hour) / 1000), rows.map((h) => h.lateness_p50_ms), rows.map((h) => h.lateness_p99_ms)];
  const opts = {
    title: 'Start lateness of scheduled runs, ms (per hour)',
    width: 640,
    height: 220,
    series: [{}, { label: 'p50', stroke: '#2c3e9e', width: 2 }, { label: 'p99', stroke: '#c62828', width: 2 }],
  };
  return html`<${Chart} opts=${opts} data=${data} />`;
}

// ---- overview -------------------------------------------------------------

const Card = ({ label, figure, text, testid }) =>
  html`<div class=${`card level-${figure?.level ?? 'ok'}`} data-testid=${testid} data-level=${figure?.level ?? 'ok'}>
    <div class="label">${label}</div><div class="value">${text ?? figure?.value}</div>
  </div>`;

function Overview() {
  const { data, error } = useApi('/api/overview', 5000);
  if (!data) return html`<${ErrorBox} error=${error} /><p>Loading…</p>`;
  const enginesAlive = data.engines.filter((e) => e.alive).length;
  const engineFigure = { value: enginesAlive, level: enginesAlive === 0 ? 'critical' : 'ok' };
  const runs24 = STATES.filter((s) => data.runs_24h[s]).map((s) => html`<tr><td><${State} state=${s} /></td><td class="num">${data.runs_24h[s]}</td></tr>`);
  return html`
    <h1>Overview</h1>
    <${ErrorBox} error=${error} />
    <div class="cards">
      <${Card} label="Engines alive" figure=${engineFigure} testid="engines-alive" />
      <${Card} label="Workers alive" figure=${data.workers_known ? data.live_workers : null} text=${data.workers_known ? data.live_workers.value : 'n/a'} testid="workers-alive" />
      <${Card} label="Failure rate (1 h)" figure=${data.failure_ratio} text=${pct(data.failure_ratio.value)} testid="failure-rate" />
      <${Card} label="Average run time (1 h)" figure=${data.avg_run_seconds} text=${`${data.avg_run_seconds.value.toFixed(1)} s`} testid="avg-run" />
      <${Card} label="Dead letters" figure=${data.dead_letters} testid="dead-letters" />
      ${data.alerts !== null &&
      html`<${Card} label="Open alerts" figure=${{ value: data.alerts.length, level: data.alerts.some((a) => a.severity === 'critical') ? 'critical' : data.alerts.length ? 'warning' : 'ok' }} testid="open-alerts" />`}
    </div>
    ${data.alerts?.length > 0 &&
    html`<h2>Open alerts</h2>
      <table><tr><th>severity</th><th>what</th><th>since</th></tr>
        ${data.alerts.map((a) => html`<tr><td class=${`text-${a.severity}`}>${a.severity}</td><td>${a.subject}${a.count > 1 ? html` <span class="count" data-testid="alert-count">${a.count} runs</span>` : null}</td><td>${fmtUtc(a.opened_at)}</td></tr>`)}
      </table>`}
    <h2>Queues</h2>
    <table data-testid="queues">
      <tr><th>job</th><th class="num">waiting</th><th class="num">active</th><th class="num">live workers</th></tr>
      ${data.queues.map(
        (q) => html`<tr><td>${q.queue}</td><td class=${`num text-${q.depth.level}`} data-level=${q.depth.level}>${q.depth.value}</td><td class="num">${q.active}</td>
          <td class="num">${q.live_workers ?? '–'}</td></tr>`,
      )}
    </table>
    <h2>Engines</h2>
    <table data-testid="engines">
      <tr><th>host</th><th>pid</th><th>state</th><th class="num">heartbeat age</th></tr>
      ${data.engines.length === 0 && html`<tr><td colspan="4" class="text-critical">No scheduler-engine has ever run against this database.</td></tr>`}
      ${data.engines.map(
        (e) => html`<tr><td>${e.host}</td><td>${e.pid}</td><td class=${e.alive ? 'text-ok' : 'text-critical'}>${e.alive ? (e.enabled ? 'alive' : 'alive (scheduling disabled)') : 'gone'}</td><td class="num">${e.heartbeat_age_s} s</td></tr>`,
      )}
    </table>
    <h2>Workers</h2>
    ${!data.workers_known
      ? html`<p class="note">This database has no worker registry yet.</p>`
      : html`<table data-testid="workers">
          <tr><th>host</th><th>pid</th><th>queues</th><th>state</th><th class="num">runs in hand</th><th class="num">memory</th><th class="num">heartbeat age</th></tr>
          ${data.workers.length === 0 && html`<tr><td colspan="7" class="text-critical">No worker is alive: nothing will run.</td></tr>`}
          ${data.workers.map(
            (w) => html`<tr><td>${w.host}</td><td>${w.pid}</td><td>${w.queues.join(', ')}</td><td class=${w.alive ? 'text-ok' : 'text-critical'}>${w.alive ? 'alive' : 'gone'}</td>
              <td class="num">${w.runs_in_hand}</td><td class="num">${fmtBytes(w.rss_bytes)}</td><td class="num">${w.heartbeat_age_s} s</td></tr>`,
          )}
        </table>`}
    <h2>Runs in the last 24 hours</h2>
    <table style="max-width: 22rem" data-testid="runs-24h"><tr><th>state</th><th class="num">runs</th></tr>${runs24}</table>
    <h2>Charts</h2>
    <${RunsPerHourChart} hours=${data.hours} />
    <${LatenessChart} hours=${data.hours} />
    <p class="note">Updated ${fmtUtc(data.generated_at)}, every 5 s.</p>`;
}

// ---- schedules ------------------------------------------------------------

const FIELDS = ['name', 'job', 'kind', 'cron', 'every', 'times', 'timezone', 'params', 'overlap', 'missed'];
const JOBS = ['collect-symbols', 'collect-prices', 'fetch-candles', 'canary', 'backtest', 'crawl-prices', 'collect-posts'];

/** Sends each problem of a 400 to the field it names (its first word), the rest to the form. */
function problemsByField(err) {
  const out = {};
  const problems = Array.isArray(err?.details) ? err.details.map(String) : err ? [err.message] : [];
  for (const p of problems) {
    const first = /^[a-z_]+/.exec(p)?.[0];
    const key = FIELDS.includes(first) ? (['cron', 'every', 'times'].includes(first) ? 'trigger' : first) : /one of cron, every or times/.test(p) ? 'trigger' : 'form';
    out[key] = out[key] ? `${out[key]}; ${p}` : p;
  }
  return out;
}

function scheduleBody(f) {
  const body = { name: f.name.trim(), job: f.job, timezone: f.timezone.trim() || undefined, overlap: f.overlap, missed: f.missed };
  if (f.kind === 'cron') body.cron = f.cron.trim();
  else if (f.kind === 'every') body.every = f.every.trim();
  else body.times = f.times.split(',').map((s) => s.trim()).filter(Boolean);
  return body;
}

function ScheduleForm({ initial, onDone, onCancel }) {
  const [f, setF] = useState(
    initial ?? { name: '', job: 'canary', kind: 'cron', cron: '*/5 * * * *', every: '5m', times: '09:00', timezone: '', params: '{}', overlap: 'skip', missed: 'once' },
  );
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
    <label for="f-job">Job</label><div><select id="f-job" name="job" value=${f.job} onInput=${set('job')}>${JOBS.map((j) => html`<option value=${j}>${j}</option>`)}</select>${fieldError('job')}</div>
    <label for="f-kind">Trigger</label>
    <div>
      <select id="f-kind" name="kind" value=${f.kind} onInput=${set('kind')} style="max-width: 10rem">
        <option value="cron">cron pattern</option><option value="every">fixed interval</option><option value="times">times of day</option>
      </select>
      ${f.kind === 'cron' && html`<input name="cron" value=${f.cron} onInput=${set('cron')} placeholder="minute hour day month weekday, e.g. 0 9 * * *" />`}
      ${f.kind === 'every' && html`<input name="every" value=${f.every} onInput=${set('every')} placeholder="30s, 5m, 1h, 1d" />`}
      ${f.kind === 'times' && html`<input name="times" value=${f.times} onInput=${set('times')} placeholder="09:00, 18:00" />`}
      ${fieldError('trigger')}
    </div>
    <label for="f-tz">Time zone</label><div><input id="f-tz" name="timezone" value=${f.timezone} onInput=${set('timezone')} placeholder="default: the api's TZ, e.g. Asia/Seoul" />${fieldError('timezone')}</div>
    <label for="f-params">Parameters (JSON)</label><div><textarea id="f-params" name="params" value=${f.params} onInput=${set('params')}></textarea>${fieldError('params')}</div>
    <label for="f-overlap">Overlap</label><div><select id="f-overlap" name="overlap" value=${f.overlap} onInput=${set('overlap')}><option value="skip">skip</option><option value="allow">allow</option><option value="queue-one">queue-one</option></select>${fieldError('overlap')}</div>
    <label for="f-missed">Missed runs</label><div><select id="f-missed" name="missed" value=${f.missed} onInput=${set('missed')}><option value="once">once</option><option value="all">all</option><option value="skip">skip</option></select>${fieldError('missed')}</div>
    <label>Next runs</label>
    <div data-testid="preview">
      ${preview === null && html`<span class="note">…</span>`}
      ${preview?.ok === true &&
      html`<div class="note">${preview.trigger} (${preview.timezone})</div>
        <ol class="mono">${preview.occurrences.map((o) => html`<li>${fmtTime(o, preview.timezone)} ${preview.timezone} · ${fmtUtc(o)}</li>`)}</ol>`}
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
  };
}

function Schedules({ role }) {
  const status = useApi('/api/scheduler/status', 5000);
  const full = useApi('/api/schedules', 5000);
  const [editing, setEditing] = useState(null);
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
        onDone=${() => {
          setEditing(null);
          setMessage('saved');
          status.reload();
          full.reload();
        }}
        onCancel=${() => setEditing(null)}
      />`}
    <h2>All schedules</h2>
    <table data-testid="schedules">
      <tr><th>name</th><th>job</th><th>trigger</th><th>time zone</th><th>next run (local · UTC)</th><th>last run</th><th>lateness</th><th>status</th>${admin && html`<th>actions</th>`}</tr>
      ${rows.map((s) => {
        const def = byId.get(s.id);
        return html`<tr data-schedule=${s.name}>
          <td><a href=${`#/runs?schedule=${s.id}`}>${s.name}</a>${s.built_in ? html` <span class="note">built-in</span>` : null}</td>
          <td>${s.job}</td><td>${s.trigger}</td><td>${s.timezone}</td>
          <td class="mono">${s.next_run_at ? html`${fmtTime(s.next_run_at, s.timezone)}<br />${fmtUtc(s.next_run_at)}` : '–'}</td>
          <td>${s.last_run ? html`<a href=${`#/runs/${s.last_run.id}`}><${State} state=${s.last_run.state} /></a> <span class="note">${fmtUtc(s.last_run_at)}</span>` : '–'}</td>
          <td><${Lateness} runId=${s.last_run?.id} /></td>
          <td>${s.status}${s.paused_reason ? html`<div class="note">${s.paused_reason}</div>` : null}</td>
          ${admin &&
          html`<td><div class="actions">
            ${s.status === 'active'
              ? html`<button onClick=${() => act(`paused ${s.name}`, 'POST', `/api/schedules/${s.id}/pause`, {})}>Pause</button>`
              : html`<button onClick=${() => act(`resumed ${s.name}`, 'POST', `/api/schedules/${s.id}/resume`, {})}>Resume</button>`}
            <button onClick=${() => act(`${s.name} triggered`, 'POST', `/api/schedules/${s.id}/trigger`, {})}>Run now</button>
            <button disabled=${!def} onClick=${() => setEditing(formFromSchedule(def))}>Edit</button>
            <button class="danger" onClick=${() => confirm(`Delete schedule ${s.name}? Its runs stay in the history.`) && act(`deleted ${s.name}`, 'DELETE', `/api/schedules/${s.id}`)}>Delete</button>
          </div></td>`}
        </tr>`;
      })}
    </table>`;
}

/** A run's start lateness, read from the run itself (the status route gives only its id). */
function Lateness({ runId }) {
  const { data } = useApi(runId ? `/api/runs/${runId}` : null);
  return data ? fmtMs(data.start_lateness_ms) : '–';
}

// ---- runs -----------------------------------------------------------------

function queryOf(route) {
  return Object.fromEntries(new URLSearchParams(route.split('?')[1] ?? ''));
}

function Runs({ route }) {
  const initial = queryOf(route);
  const [filters, setFilters] = useState({ schedule: initial.schedule ?? '', job: initial.job ?? '', state: initial.state ?? '', trigger: initial.trigger ?? '', since: '', until: '' });
  const schedules = useApi('/api/schedules');
  const qs = new URLSearchParams({ limit: '100' });
  for (const [k, v] of Object.entries(filters)) {
    if (!v) continue;
    qs.set(k, k === 'since' || k === 'until' ? new Date(v).toISOString() : v);
  }
  const { data, error } = useApi(`/api/runs?${qs}`, 3000);
  const set = (k) => (e) => {
    const v = e.target.value;
    // Functional update: two quick changes must not undo each other.
    setFilters((old) => ({ ...old, [k]: v }));
  };
  return html`
    <h1>Runs</h1>
    <div class="filters" data-testid="run-filters">
      <label>schedule<select name="schedule" value=${filters.schedule} onInput=${set('schedule')}><option value="">any</option>
        ${(schedules.data?.schedules ?? []).map((s) => html`<option value=${String(s.id)}>${s.name}</option>`)}</select></label>
      <label>job<select name="job" value=${filters.job} onInput=${set('job')}><option value="">any</option>${JOBS.map((j) => html`<option value=${j}>${j}</option>`)}</select></label>
      <label>state<select name="state" value=${filters.state} onInput=${set('state')}><option value="">any</option>${STATES.map((s) => html`<option value=${s}>${s}</option>`)}</select></label>
      <label>trigger<select name="trigger" value=${filters.trigger} onInput=${set('trigger')}><option value="">any</option>${TRIGGERS.map((s) => html`<option value=${s}>${s}</option>`)}</select></label>
      <label>created from<input type="datetime-local" name="since" value=${filters.since} onInput=${set('since')} /></label>
      <label>created before<input type="datetime-local" name="until" value=${filters.until} onInput=${set('until')} /></label>
    </div>
    <${ErrorBox} error=${error} />
    ${data && html`<p class="note">${data.total} runs match; newest ${data.runs.length} shown.</p>`}
    <table data-testid="runs">
      <tr><th>run</th><th>job</th><th>trigger</th><th>state</th><th>scheduled</th><th>started</th><th>finished</th><th class="num">lateness</th><th class="num">duration</th><th class="num">attempts</th><th>error</th></tr>
      ${(data?.runs ?? []).map(
        (r) => html`<tr data-run=${r.id}>
          <td class="mono"><a href=${`#/runs/${r.id}`}>${r.id.slice(0, 8)}</a></td><td>${r.job}</td><td>${r.trigger}</td><td><${State} state=${r.state} /></td>
          <td class="mono">${fmtUtc(r.scheduled_for)}</td><td class="mono">${fmtUtc(r.started_at)}</td><td class="mono">${fmtUtc(r.finished_at)}</td>
          <td class="num">${fmtMs(r.start_lateness_ms)}</td><td class="num">${fmtMs(r.duration_ms)}</td><td class="num">${r.attempts}</td><td>${errText(r.error)}</td>
        </tr>`,
      )}
    </table>`;
}

const FINAL = new Set(['completed', 'failed', 'cancelled', 'skipped', 'missed']);

/** The retries and requeues around a run: older ones through retry_of, newer through requeued_as. */
function useChain(run) {
  const [chain, setChain] = useState([]);
  useEffect(() => {
    if (!run) return;
    let live = true;
    (async () => {
      const before = [];
      let prev = run.retry_of;
      while (prev && before.length < 20) {
        const r = await api('GET', `/api/runs/${prev}`).catch(() => null);
        if (!r) break;
        before.unshift(r);
        prev = r.retry_of;
      }
      const after = [];
      let next = run.requeued_as;
      while (next && after.length < 20) {
        const r = await api('GET', `/api/runs/${next}`).catch(() => null);
        if (!r) break;
        after.push(r);
        next = r.requeued_as;
      }
      if (live) setChain([...before, run, ...after]);
    })();
    return () => {
      live = false;
    };
  }, [run?.id, run?.retry_of, run?.requeued_as]);
  return chain;
}

function RunPage({ id }) {
  const [finished, setFinished] = useState(false);
  const { data: run, error } = useApi(`/api/runs/${id}`, finished ? 0 : 1000);
  useEffect(() => {
    if (run && FINAL.has(run.state)) setFinished(true);
  }, [run?.state]);
  const chain = useChain(run);
  if (!run) return html`<${ErrorBox} error=${error} /><p>Loading…</p>`;
  return html`
    <h1>Run <span class="mono">${run.id}</span></h1>
    <${ErrorBox} error=${error} />
    <dl class="kv" data-testid="run">
      <dt>job</dt><dd>${run.job}</dd>
      <dt>state</dt><dd data-testid="run-state"><${State} state=${run.state} />${run.reason ? html` <span class="note">${run.reason}</span>` : null}</dd>
      <dt>progress</dt><dd><div class="progress" data-testid="progress" data-progress=${run.progress}><div style=${`width: ${Math.round(run.progress * 100)}%`}></div></div>
        <span class="note">${Math.round(run.progress * 100)} % ${run.progress_message ?? ''}</span></dd>
      <dt>trigger</dt><dd>${run.trigger}${run.schedule_id ? html` · <a href=${`#/runs?schedule=${run.schedule_id}`}>schedule ${run.schedule_id}</a>` : null}</dd>
      <dt>scheduled for</dt><dd class="mono">${fmtUtc(run.scheduled_for)}</dd>
      <dt>published</dt><dd class="mono">${fmtUtc(run.published_at)}</dd>
      <dt>started</dt><dd class="mono">${fmtUtc(run.started_at)} <span class="note">late ${fmtMs(run.start_lateness_ms)}</span></dd>
      <dt>finished</dt><dd class="mono">${fmtUtc(run.finished_at)} <span class="note">took ${fmtMs(run.duration_ms)}</span></dd>
      <dt>attempts</dt><dd>${run.attempts}</dd>
    </dl>
    <h2>Parameters</h2><pre>${JSON.stringify(run.params, null, 2)}</pre>
    ${run.result !== null && run.result !== undefined && html`<h2>Result</h2><pre data-testid="result">${JSON.stringify(run.result, null, 2)}</pre>`}
    ${run.error !== null && run.error !== undefined && html`<h2>Error</h2><pre class="text-critical" data-testid="error">${JSON.stringify(run.error, null, 2)}</pre>`}
    ${chain.length > 1 &&
    html`<h2>Retries and requeues</h2>
      <table data-testid="chain"><tr><th>run</th><th>state</th><th>created</th><th>error</th></tr>
        ${chain.map((r) => html`<tr><td class="mono">${r.id === run.id ? html`<b>${r.id}</b>` : html`<a href=${`#/runs/${r.id}`}>${r.id}</a>`}</td><td><${State} state=${r.state} /></td><td>${fmtUtc(r.created_at)}</td><td>${errText(r.error)}</td></tr>`)}
      </table>`}`;
}

// ---- dead letters ---------------------------------------------------------

function DeadLetters({ role }) {
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
  return html`
    <h1>Dead letters</h1>
    <p class="note">Runs whose last attempt failed (or whose worker was lost), not yet requeued.</p>
    <${ErrorBox} error=${actionError ?? error} />
    ${message && html`<p class="note" data-testid="message">${message}</p>`}
    ${admin &&
    html`<div class="filters">
      <button disabled=${selected.size === 0} onClick=${() => act(async () => `requeued ${(await api('POST', '/api/dead-letters/requeue', { ids: [...selected] })).count}`)}>Requeue selected (${selected.size})</button>
      <button disabled=${rows.length === 0} onClick=${() => confirm('Requeue every dead letter?') && act(async () => `requeued ${(await api('POST', '/api/dead-letters/requeue', { all: true })).count}`)}>Requeue all</button>
      <label>older than (hours)<input type="number" min="0" value=${hours} onInput=${(e) => setHours(e.target.value)} style="width: 7rem" /></label>
      <button class="danger" onClick=${() => confirm(`Delete dead letters older than ${hours} h?`) && act(async () => `purged ${JSON.stringify(await api('POST', '/api/dead-letters/purge', { older_than_hours: Number(hours) }))}`)}>Purge</button>
    </div>`}
    <table data-testid="dead-letters">
      <tr>${admin && html`<th></th>`}<th>run</th><th>job</th><th>failed at</th><th class="num">attempts</th><th>error</th>${admin && html`<th></th>`}</tr>
      ${rows.length === 0 && html`<tr><td colspan="7" class="note">No dead letters.</td></tr>`}
      ${rows.map(
        (r) => html`<tr data-run=${r.id}>
          ${admin && html`<td><input type="checkbox" checked=${selected.has(r.id)} onChange=${() => toggle(r.id)} /></td>`}
          <td class="mono"><a href=${`#/runs/${r.id}`}>${r.id.slice(0, 8)}</a></td><td>${r.job}</td><td class="mono">${fmtUtc(r.finished_at)}</td><td class="num">${r.attempts}</td><td>${errText(r.error)}</td>
          ${admin && html`<td><button onClick=${() => act(async () => `requeued as ${(await api('POST', `/api/dead-letters/${r.id}/requeue`, {})).task_id}`)}>Requeue</button></td>`}
        </tr>`,
      )}
    </table>`;
}

// ---- data -----------------------------------------------------------------

/** uPlot draws lines; candles are drawn in its draw hook: a wick from low to high and a body from open to close. */
function candlePlugin() {
  return {
    hooks: {
      draw: (u) => {
        const [xs, open, high, low, close] = u.data;
        const ctx = u.ctx;
        const width = Math.max(1, Math.min(12, (u.bbox.width / Math.max(1, xs.length)) * 0.7));
        ctx.save();
        for (let i = 0; i < xs.length; i++) {
          const x = Math.round(u.valToPos(xs[i], 'x', true));
          const up = close[i] >= open[i];
          ctx.strokeStyle = ctx.fillStyle = up ? '#1a7f37' : '#c62828';
          ctx.beginPath();
          ctx.moveTo(x, u.valToPos(high[i], 'y', true));
          ctx.lineTo(x, u.valToPos(low[i], 'y', true));
          ctx.stroke();
          const yo = u.valToPos(open[i], 'y', true);
          const yc = u.valToPos(close[i], 'y', true);
          ctx.fillRect(x - width / 2, Math.min(yo, yc), width, Math.max(1, Math.abs(yc - yo)));
        }
        ctx.restore();
      },
    },
  };
}

function CandleChart({ series }) {
  const q = new URLSearchParams({ exchange: series.exchange, symbol: series.symbol, timeframe: series.timeframe, limit: '300' });
  const { data, error } = useApi(`/api/data/candles?${q}`);
  if (error) return html`<${ErrorBox} error=${error} />`;
  if (!data) return html`<p>Loading…</p>`;
  if (data.candles.length === 0) return html`<p class="note">No candle of this series is in PostgreSQL (collect with STORAGE=postgres or both to chart it here).</p>`;
  const c = data.candles;
  const plotData = [c.map((k) => Date.parse(k.time) / 1000), c.map((k) => k.open), c.map((k) => k.high), c.map((k) => k.low), c.map((k) => k.close)];
  const opts = {
    title: `${series.exchange} ${series.symbol} ${series.timeframe}: last ${c.length} candles (UTC)`,
    width: 900,
    height: 360,
    plugins: [candlePlugin()],
    scales: { y: { range: (u, min, max) => [min - (max - min) * 0.05, max + (max - min) * 0.05] } },
    series: [{}, { label: 'open', show: false }, { label: 'high', show: false }, { label: 'low', show: false }, { label: 'close', stroke: 'transparent' }],
  };
  return html`<div data-testid="candle-chart"><${Chart} opts=${opts} data=${plotData} /></div>`;
}

function DataPage() {
  const { data, error } = useApi('/api/data/series', 15000);
  const [chosen, setChosen] = useState(null);
  const rows = data?.series ?? [];
  return html`
    <h1>Data</h1>
    <p class="note">Candles stored in PostgreSQL per series (first, last, count, periods without a candle) and each series' latest collection. Parquet-only series show their latest collection.</p>
    <${ErrorBox} error=${error} />
    ${chosen && html`<${CandleChart} series=${chosen} key=${`${chosen.exchange}/${chosen.symbol}/${chosen.timeframe}`} />`}
    <table data-testid="series">
      <tr><th>exchange</th><th>symbol</th><th>timeframe</th><th>first candle</th><th>last candle</th><th class="num">count</th><th class="num">missing</th><th>last collected</th><th></th></tr>
      ${rows.length === 0 && html`<tr><td colspan="9" class="note">Nothing collected yet.</td></tr>`}
      ${rows.map(
        (r) => html`<tr data-series=${`${r.exchange}/${r.symbol}/${r.timeframe}`}>
          <td>${r.exchange}</td><td>${r.symbol}</td><td>${r.timeframe}</td><td class="mono">${fmtUtc(r.first)}</td><td class="mono">${fmtUtc(r.last)}</td>
          <td class="num">${r.count}</td><td class=${`num ${r.missing ? 'text-warning' : ''}`}>${r.missing ?? '–'}</td>
          <td>${r.last_run_id ? html`<a href=${`#/runs/${r.last_run_id}`}><${State} state=${r.last_run_state} /></a> <span class="note">${fmtUtc(r.last_collected_at)}</span>` : '–'}</td>
          <td>${r.count > 0 && html`<button onClick=${() => setChosen(r)}>Chart</button>`}</td>
        </tr>`,
      )}
    </table>`;
}

// ---- shell ----------------------------------------------------------------

function TokenForm({ reason, onToken }) {
  const [value, setValue] = useState('');
  return html`<form class="token-form" onSubmit=${(e) => {
    e.preventDefault();
    onToken(value.trim());
  }}>
    <h1>Wombat</h1>
    <p>${reason}</p>
    <p><input type="password" name="token" placeholder="API_ADMIN_TOKEN or API_READ_TOKEN" value=${value} onInput=${(e) => setValue(e.target.value)} autocomplete="off" /></p>
    <p><button class="primary" type="submit">Open the dashboard</button></p>
    <p class="note">The token stays in this browser tab only (session storage).</p>
  </form>`;
}

function useRoute() {
  const [route, setRoute] = useState(location.hash.slice(1) || '/');
  useEffect(() => {
    const on = () => setRoute(location.hash.slice(1) || '/');
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

function App() {
  const route = useRoute();
  const [who, setWho] = useState(null);
  const [problem, setProblem] = useState(null);
  const check = useCallback(async () => {
    try {
      const w = await api('GET', '/api/whoami');
      if (w.reads === 'token' && w.role === 'anonymous') setProblem('This api needs a token to read.');
      else setProblem(null);
      setWho(w);
    } catch (err) {
      if (err.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        setProblem('That token is not valid for this api.');
        setWho({ role: 'anonymous', reads: 'token' });
      } else setProblem(`The api did not answer: ${err.message}`);
    }
  }, []);
  useEffect(() => {
    check();
    const on = () => check();
    addEventListener('wombat-unauthorized', on);
    return () => removeEventListener('wombat-unauthorized', on);
  }, [check]);

  if (problem && (!who || who.reads === 'token'))
    return html`<${TokenForm} reason=${problem} onToken=${(t) => {
      sessionStorage.setItem(TOKEN_KEY, t);
      check();
    }} />`;
  if (!who) return html`<p class="loading">Loading…</p>`;
  const path = route.split('?')[0];
  const nav = [['/', 'Overview'], ['/schedules', 'Schedules'], ['/runs', 'Runs'], ['/dead-letters', 'Dead letters'], ['/data', 'Data']];
  let page;
  if (path === '/schedules') page = html`<${Schedules} role=${who.role} />`;
  else if (path === '/runs') page = html`<${Runs} route=${route} key=${route} />`;
  else if (path.startsWith('/runs/')) page = html`<${RunPage} id=${path.slice('/runs/'.length)} key=${path} />`;
  else if (path === '/dead-letters') page = html`<${DeadLetters} role=${who.role} />`;
  else if (path === '/data') page = html`<${DataPage} />`;
  else page = html`<${Overview} />`;
  return html`
    <header>
      <span class="brand">Wombat</span>
      ${nav.map(([href, label]) => html`<a href=${`#${href}`} class=${(href === '/' ? path === '/' : path.startsWith(href)) ? 'active' : ''}>${label}</a>`)}
      <span class="who" data-testid="role">${who.role === 'anonymous' ? 'read-only (no token)' : who.role === 'read' ? 'read-only token' : 'admin'}
        ${sessionStorage.getItem(TOKEN_KEY)
          ? html` · <a href="#/" onClick=${() => {
              sessionStorage.removeItem(TOKEN_KEY);
              check();
            }}>forget token</a>`
          : html` · <a href="#/" onClick=${() => setProblem('Give a token to act on schedules and dead letters.') || setWho({ ...who, reads: 'token' })}>use a token</a>`}
      </span>
    </header>
    <main>${page}</main>`;
}

render(html`<${App} />`, document.getElementById('app'));
