/** A schedule as the dependency graph sees it: its name and the names it waits for. */
export interface DependencyNode {
  name: string;
  after: readonly string[];
}

/**
 * The daily collection: built-in schedules named after their jobs, and what each waits
 * for. The engine's built-ins take their `after` from here, and `wombat run full` runs
 * them in this graph's order (dependencyOrder), so the two cannot disagree. Prices wait
 * for the day's symbols (keeping their own time as the earliest); the crawls are independent.
 */
export const DAILY_PIPELINE: readonly DependencyNode[] = [
  { name: 'collect-symbols', after: [] },
  { name: 'collect-prices', after: ['collect-symbols'] },
  { name: 'crawl-prices', after: [] },
  { name: 'collect-posts', after: [] },
];

/**
 * The names in an order where each comes after everything it waits for; among
 * those free to go, the given order is kept. Throws, saying what to fix, on a
 * name waited for that is not in the graph and on a cycle (with its path). The
 * database applies the same rules to stored schedules (migration 0016); this is
 * the order `wombat run full` follows.
 */
export function dependencyOrder(nodes: readonly DependencyNode[]): string[] {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  for (const n of nodes) {
    const unknown = n.after.filter((a) => !byName.has(a));
    if (unknown.length > 0) throw new Error(`${n.name} waits for ${unknown.join(', ')}, which is not in the graph`);
  }
  const out: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, path: string[]) => {
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') throw new Error(`dependency cycle: ${[...path.slice(path.indexOf(name)), name].join(' -> ')}`);
    state.set(name, 'visiting');
    for (const a of byName.get(name)!.after) visit(a, [...path, name]);
    state.set(name, 'done');
    out.push(name);
  };
  for (const n of nodes) visit(n.name, []);
  return out;
}
