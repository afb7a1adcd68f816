import { readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * The checkout Wombat runs from: the nearest folder above this module whose
 * package.json is the workspace root's. Found by walking up rather than by a fixed
 * depth, so the same answer comes from the sources (packages/core/src) and from a
 * service's build (services/<name>/dist).
 */
function findRepoRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown; workspaces?: unknown };
      if (pkg.name === 'wombat' && Array.isArray(pkg.workspaces)) return dir;
    } catch {
      // No package.json here (or not JSON): keep walking up.
    }
    if (path.dirname(dir) === dir) throw new Error(`cannot find Wombat's root folder (package.json named "wombat") above ${from}`);
  }
}

export const repoRoot = findRepoRoot(import.meta.dirname);
