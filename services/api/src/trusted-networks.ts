import { BlockList, isIP, SocketAddress } from 'node:net';
import type { Field } from '@wombat/core/platform';

/**
 * Networks and proxies the api trusts by address (API_TRUSTED_NETWORKS, API_TRUSTED_PROXIES).
 * Node's BlockList does the address maths, IPv4-mapped IPv6 peers (::ffff:10.0.0.5) included.
 */
export interface AddressSet {
  /** The entries as configured, normalised to CIDRs: for logs and the start warning. */
  cidrs: string[];
  has(address: string): boolean;
}

const familyOf = (address: string): 'ipv4' | 'ipv6' | undefined => (isIP(address) === 4 ? 'ipv4' : isIP(address) === 6 ? 'ipv6' : undefined);

/** One entry: an address (a network of that one address) or address/prefix; an Error saying what is wrong. */
function parseCidr(entry: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | Error {
  const slash = entry.indexOf('/');
  const address = slash === -1 ? entry : entry.slice(0, slash);
  const family = familyOf(address);
  if (!family) return new Error(`"${entry}" is not an IPv4 or IPv6 network: write it like 10.0.0.0/8, fd00::/8 or 192.168.1.20`);
  const max = family === 'ipv4' ? 32 : 128;
  if (slash === -1) return { address, prefix: max, family };
  const text = entry.slice(slash + 1);
  const prefix = /^\d{1,3}$/.test(text) ? Number(text) : Number.NaN;
  if (!(prefix >= 0 && prefix <= max)) return new Error(`"${entry}" has a bad prefix length: ${family === 'ipv4' ? 'IPv4' : 'IPv6'} takes /0 to /${max}`);
  return { address, prefix, family };
}

/** Comma-separated networks as an AddressSet; throws one Error naming every bad entry. */
export function parseAddressSet(raw: string): AddressSet {
  const list = new BlockList();
  const cidrs: string[] = [];
  const problems: string[] = [];
  for (const entry of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    const parsed = parseCidr(entry);
    if (parsed instanceof Error) {
      problems.push(parsed.message);
      continue;
    }
    list.addSubnet(parsed.address, parsed.prefix, parsed.family);
    cidrs.push(`${parsed.address}/${parsed.prefix}`);
  }
  if (problems.length > 0) throw new Error(problems.join('; '));
  return { cidrs, has: (address) => hasAddress(list, address) };
}

function hasAddress(list: BlockList, address: string): boolean {
  const family = familyOf(address);
  return family !== undefined && list.check(address, family);
}

/** A configuration field of comma-separated networks; unset is none. */
export function addressSetField(env: string, doc: string): Field<AddressSet | undefined> {
  return {
    env,
    doc,
    parse(raw) {
      if (raw === undefined || raw.trim() === '') return undefined;
      return parseAddressSet(raw);
    },
  };
}

/** One X-Forwarded-For hop: an address, or an address with a port as some proxies write it (1.2.3.4:80, [::1]:80). */
function hopAddress(hop: string): string | undefined {
  if (isIP(hop)) return hop;
  return SocketAddress.parse(hop)?.address;
}

/**
 * The address a request comes from. X-Forwarded-For is believed only when the direct peer is a
 * trusted proxy: walking it from the right (the hop the proxy appended), every address that is a
 * trusted proxy too is skipped, and the first one that is not is the client. The left of that is
 * whatever the client chose to write, so it counts for nothing. A hop that is no address makes the
 * client unknown (undefined).
 */
export function clientAddress(peer: string | undefined, forwardedFor: string | undefined, proxies: AddressSet | undefined): string | undefined {
  if (peer === undefined || !proxies?.has(peer) || forwardedFor === undefined) return peer;
  const hops = forwardedFor.split(',').map((s) => s.trim()).filter(Boolean);
  let client = peer;
  for (let i = hops.length - 1; i >= 0; i--) {
    const address = hopAddress(hops[i]!);
    if (address === undefined) return undefined;
    client = address;
    if (!proxies.has(address)) return address;
  }
  // Every hop is a trusted proxy: the left-most is the origin.
  return client;
}
