// The schedules' dependency graph (after) as a small drawing: a box per schedule that waits
// for another or is waited for, coloured by its latest run's state, an arrow from each
// prerequisite to the schedule that waits for it. Columns follow the dependency depth.
import { html } from '/ui/vendor/preact-htm.js';
import { useApi } from '../client.js';

const W = 180;
const H = 40;
const COL_GAP = 70;
const ROW_GAP = 14;
const PAD = 10;
/** Room above the boxes for the arcs of edges that skip a column. */
const TOP = 40;

/** Positions of the schedules taking part in a dependency; depth = the longest chain of prerequisites before it. */
export function layoutGraph(nodes, edges) {
  const involved = new Set(edges.flatMap((e) => [e.from, e.to]));
  const shown = nodes.filter((n) => involved.has(n.name));
  const byName = new Map(shown.map((n) => [n.name, n]));
  const depth = new Map();
  const depthOf = (name, seen) => {
    if (depth.has(name)) return depth.get(name);
    if (seen.has(name)) return 0; // the database refuses cycles; never loop on one anyway
    seen.add(name);
    const prerequisites = (byName.get(name)?.after ?? []).filter((a) => byName.has(a));
    const d = prerequisites.length === 0 ? 0 : Math.max(...prerequisites.map((a) => depthOf(a, seen) + 1));
    depth.set(name, d);
    return d;
  };
  const rows = new Map();
  const placed = shown.map((n) => {
    const col = depthOf(n.name, new Set());
    const row = rows.get(col) ?? 0;
    rows.set(col, row + 1);
    return { ...n, x: PAD + col * (W + COL_GAP), y: TOP + row * (H + ROW_GAP) };
  });
  const at = new Map(placed.map((p) => [p.name, p]));
  const lines = edges.filter((e) => at.has(e.from) && at.has(e.to)).map((e) => ({ ...e, a: at.get(e.from), b: at.get(e.to) }));
  const width = Math.max(0, ...placed.map((p) => p.x + W)) + PAD;
  const height = Math.max(0, ...placed.map((p) => p.y + H)) + PAD;
  return { placed, lines, width, height };
}

/** Next columns: a curve from side to side; further: an arc over the boxes in between, top to top. */
function edgePath(a, b) {
  const [ay, by] = [a.y + H / 2, b.y + H / 2];
  if (b.x - a.x <= W + COL_GAP) return `M ${a.x + W} ${ay} C ${a.x + W + COL_GAP / 2} ${ay}, ${b.x - COL_GAP / 2} ${by}, ${b.x} ${by}`;
  const lift = Math.min(a.y, b.y) - TOP + 6;
  return `M ${a.x + W / 2} ${a.y} C ${a.x + W / 2} ${a.y - lift - 20}, ${b.x + W / 2} ${b.y - lift - 20}, ${b.x + W / 2} ${b.y}`;
}

export function ScheduleGraph() {
  const { data, error } = useApi('/api/schedules/graph', 5000);
  if (error) return html`<p class="note">The dependency graph could not be read: ${error.message}</p>`;
  if (!data) return html`<p class="note">…</p>`;
  if (data.edges.length === 0) return html`<p class="note" data-testid="schedule-graph-empty">No schedule waits for another (after).</p>`;
  const { placed, lines, width, height } = layoutGraph(data.nodes, data.edges);
  return html`<svg class="graph" data-testid="schedule-graph" width=${width} height=${height} viewBox=${`0 0 ${width} ${height}`} role="img"
    aria-label="schedules and the schedules they wait for">
    <defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
      <path d="M 0 0 L 10 5 L 0 10 z" fill="#667" /></marker></defs>
    ${lines.map(
      ({ from, to, a, b }) => html`<path data-edge=${`${from}->${to}`} class="graph-edge" marker-end="url(#arrow)"
        d=${edgePath(a, b)} />`,
    )}
    ${placed.map(
      (n) => html`<a href=${n.last_run_id ? `#/runs/${n.last_run_id}` : `#/runs?schedule=${n.id}`} data-node=${n.name} data-state=${n.last_run_state ?? 'none'}>
        <rect class=${`graph-node state-${n.last_run_state ?? 'none'}`} x=${n.x} y=${n.y} width=${W} height=${H} rx="6" />
        <text x=${n.x + 8} y=${n.y + 16} class="graph-name">${n.name}${n.status === 'paused' ? ' (paused)' : ''}</text>
        <text x=${n.x + 8} y=${n.y + 32} class="graph-state">${n.last_run_state ?? 'no run yet'}</text>
      </a>`,
    )}
  </svg>`;
}

/** What a waiting run waits for: its schedule's prerequisites, each with its latest run's state. */
export function WaitsFor({ scheduleId }) {
  const { data } = useApi('/api/schedules/graph', 2000);
  const self = data?.nodes.find((n) => n.id === scheduleId);
  if (!self) return html`<span class="note">…</span>`;
  const byName = new Map(data.nodes.map((n) => [n.name, n]));
  return html`<span data-testid="waits-for">${self.after.map((name, i) => {
    const p = byName.get(name);
    return html`${i > 0 ? ', ' : ''}<a href=${`#/runs?schedule=${p?.id ?? ''}`}>${name}</a>
      <span class=${`state state-${p?.last_run_state ?? 'none'}`} data-state=${p?.last_run_state ?? 'none'}>${p?.last_run_state ?? 'no run yet'}</span>`;
  })}</span>`;
}
