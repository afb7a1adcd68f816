import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import ipaddr from 'ipaddr.js';
import { Agent, type Dispatcher } from 'undici';
import { PermanentError } from '@wombat/core/platform';

/**
 * Where the crawler may connect. A shop is a stranger: a redirect (or a DNS name)
 * pointing at 127.0.0.1, a private range or 169.254.169.254 (cloud metadata)
 * would turn the crawler into a way in. Only global unicast addresses are
 * reached, checked on the literal host before connecting and on every address
 * DNS answers at connect time (so a name that resolves differently later is
 * checked again), on every hop, robots.txt included. A source that lives on a
 * private address says so (`allow_private: true`), and that opens its own hosts
 * only, not where they redirect.
 */

/** ipaddr.js's range name of an address: 'unicast' is the only public one. */
export function addressRange(ip: string): string {
  const parsed = ipaddr.process(ip.replace(/^\[|\]$/g, ''));
  return parsed.range();
}

export function isPublicAddress(ip: string): boolean {
  return addressRange(ip) === 'unicast';
}

function refused(host: string, range: string): PermanentError {
  return new PermanentError('private_address', `${host} is a ${range} address; the crawler reaches public addresses only (set allow_private: true on a source that lives on a private network)`);
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** dns.lookup for net.connect that fails when any address of the name is not public. */
function publicLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, []);
    const bad = addresses.find((a) => !isPublicAddress(a.address));
    if (bad) return callback(refused(hostname, addressRange(bad.address)) as NodeJS.ErrnoException, []);
    if (options.all) return callback(null, addresses);
    const first = addresses[0]!;
    callback(null, first.address, first.family);
  });
}

let publicAgent: Agent | undefined;

/**
 * The dispatcher for one request to `url`: the default one for a host the source
 * allows private addresses on, else one that connects to public addresses only.
 * Throws before any connection when the host is a literal non-public address.
 */
export function dispatcherFor(url: URL, privateHosts: ReadonlySet<string> | undefined): Dispatcher | undefined {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new PermanentError('bad_redirect', `${url.protocol} URLs are not fetched`);
  const host = url.hostname.toLowerCase();
  if (privateHosts?.has(host)) return undefined;
  const literal = host.replace(/^\[|\]$/g, '');
  if (ipaddr.isValid(literal) && !isPublicAddress(literal)) throw refused(url.host, addressRange(literal));
  publicAgent ??= new Agent({ connect: { lookup: publicLookup as never } });
  return publicAgent;
}
