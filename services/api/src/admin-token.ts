import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '@wombat/core/platform';

/**
 * True when `databaseUrl` is the embedded PostgreSQL of a local run: the launcher
 * (`npm start`) starts it and hands its URL to every service as DATABASE_URL, so
 * the address (loopback, EMBEDDED_PG_PORT) is what tells a developer's machine.
 */
export function isEmbeddedDatabaseUrl(databaseUrl: string, embeddedPort: number): boolean {
  try {
    const url = new URL(databaseUrl);
    return ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname) && Number(url.port) === embeddedPort;
  } catch {
    return false;
  }
}

/**
 * The admin token of a local run. A configured API_ADMIN_TOKEN always wins. With
 * the embedded database (a developer's machine) a token is generated once and kept
 * in `file` (mode 0600), so `npm start` works out of the box; its path is logged,
 * never the token. Against a real DATABASE_URL nothing is generated: mutations stay
 * refused until the operator sets API_ADMIN_TOKEN.
 */
export async function resolveAdminToken(opts: { configured: string | undefined; embedded: boolean; file: string; log: Logger }): Promise<string | undefined> {
  if (opts.configured !== undefined) return opts.configured;
  if (!opts.embedded) {
    opts.log.warn('API_ADMIN_TOKEN is not set: every change (POST, PUT, PATCH, DELETE) is refused; set it in the api service environment');
    return undefined;
  }
  try {
    const stored = (await readFile(opts.file, 'utf8')).trim();
    if (stored.length >= 16) {
      await chmod(opts.file, 0o600);
      opts.log.info({ file: opts.file }, 'admin token for local use is in this file (send it as "Authorization: Bearer <token>")');
      return stored;
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const token = randomBytes(32).toString('base64url');
  await mkdir(path.dirname(opts.file), { recursive: true });
  await writeFile(opts.file, `${token}\n`, { mode: 0o600 });
  opts.log.info({ file: opts.file }, 'generated an admin token for local use; it is in this file (send it as "Authorization: Bearer <token>")');
  return token;
}
