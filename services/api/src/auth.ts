import { createHash, timingSafeEqual } from 'node:crypto';
import { AppError } from '@wombat/core/platform';
import type { FastifyRequest } from 'fastify';
import { clientAddress, type AddressSet } from './trusted-networks.ts';

export interface AuthOptions {
  /** Required for every mutating route; undefined refuses all mutations. */
  adminToken?: string | undefined;
  /** Grants read routes only. */
  readToken?: string | undefined;
  /** open: read routes need no token. */
  reads: 'open' | 'token';
  /** API_TRUSTED_NETWORKS: a request without a token from these is admin. */
  trustedNetworks?: AddressSet | undefined;
  /** API_TRUSTED_PROXIES: peers whose X-Forwarded-For is believed. */
  trustedProxies?: AddressSet | undefined;
}

/** What a route needs: `none` (health, OpenAPI), `read`, or `admin` (every mutation). */
export type Access = 'none' | 'read' | 'admin';

export function accessForMethod(method: string): Access {
  return method === 'GET' || method === 'HEAD' || method === 'OPTIONS' ? 'read' : 'admin';
}

// Comparing digests of equal length keeps the comparison constant-time whatever the input length.
function sameToken(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

function bearer(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

/**
 * Whether a request without a token comes from API_TRUSTED_NETWORKS, logged with its addresses
 * when it does. A peer that is no trusted proxy but sends X-Forwarded-For is a proxy nobody
 * declared: everyone behind it would look like it, so it earns no trust.
 */
function fromTrustedNetwork(opts: AuthOptions, request: FastifyRequest): boolean {
  if (!opts.trustedNetworks) return false;
  const peer = request.socket.remoteAddress;
  const forwardedFor = request.headers['x-forwarded-for'];
  const forwarded = typeof forwardedFor === 'string' ? forwardedFor : undefined;
  if (forwarded !== undefined && (peer === undefined || !opts.trustedProxies?.has(peer))) {
    if (peer !== undefined && opts.trustedNetworks.has(peer)) {
      request.log.warn({ peer, forwardedFor: forwarded }, 'X-Forwarded-For from a peer not in API_TRUSTED_PROXIES: the request needs a token (list the proxy there)');
    }
    return false;
  }
  const client = clientAddress(peer, forwarded, opts.trustedProxies);
  if (client === undefined || !opts.trustedNetworks.has(client)) return false;
  request.log.info({ peer, client, method: request.method, url: request.url }, 'request without a token accepted as admin from API_TRUSTED_NETWORKS');
  return true;
}

/** Throws the AppError (401/403) that refuses `request`, or returns when it may go on. */
export function authorize(opts: AuthOptions, access: Access, request: FastifyRequest): void {
  if (access === 'none') return;
  if (access === 'read' && opts.reads === 'open') return;
  const token = bearer(request);
  // Only a request without a token: a token that is sent must be right wherever it comes from.
  if (token === undefined && fromTrustedNetwork(opts, request)) return;
  if (access === 'admin' && opts.adminToken === undefined) {
    throw new AppError('admin_token_unset', 'changes are disabled: the api has no admin token; set API_ADMIN_TOKEN on the api service');
  }
  if (token === undefined) {
    throw new AppError('unauthorized', `this endpoint needs a token: send "Authorization: Bearer <${access === 'admin' ? 'API_ADMIN_TOKEN' : 'API_READ_TOKEN'}>"`);
  }
  const isAdmin = opts.adminToken !== undefined && sameToken(token, opts.adminToken);
  if (isAdmin) return;
  const isReader = opts.readToken !== undefined && sameToken(token, opts.readToken);
  if (access === 'read' && isReader) return;
  if (isReader) throw new AppError('forbidden', 'the read token cannot change anything: use API_ADMIN_TOKEN');
  throw new AppError('unauthorized', 'the bearer token is not valid for this api');
}

export type Role = 'admin' | 'read' | 'anonymous';

/** Who the caller is, for pages that show or hide actions; a token that matches nothing is refused. */
export function roleOf(opts: AuthOptions, request: FastifyRequest): Role {
  const token = bearer(request);
  if (token === undefined) return fromTrustedNetwork(opts, request) ? 'admin' : 'anonymous';
  if (opts.adminToken !== undefined && sameToken(token, opts.adminToken)) return 'admin';
  if (opts.readToken !== undefined && sameToken(token, opts.readToken)) return 'read';
  throw new AppError('unauthorized', 'the bearer token is not valid for this api');
}
