/**
 * @module registry/auth
 * The registry auth dance (Docker token spec, used by every registry berth talks to):
 * a request answered 401 carries `WWW-Authenticate: Bearer realm=..,service=..,scope=..`;
 * we get a token from the realm for `repository:<repo>:pull` (anonymously, with Basic
 * credentials, or with an OAuth2 refresh token for `identitytoken` entries) and resend
 * with `Authorization: Bearer <token>`. `Basic` challenges get the credentials directly.
 *
 * Tokens are cached per (API host, scope) for the client's lifetime and honour expires_in
 * (min 60 s, as the spec says, minus a safety margin). Concurrent requests for the same
 * scope share one token request. After the first challenge from a host, later requests
 * authenticate up front instead of collecting another 401 each.
 */
import { BerthError } from '../base/errors.ts';
import { redactUrl } from '../base/redact.ts';
import { parseWwwAuthenticate, type Challenge } from './www-authenticate.ts';
import { httpError } from './http-errors.ts';
import { readLimited } from './manifest-check.ts';
import type { Transport, SendResult } from './transport.ts';
import type { CredentialLookup, Credentials } from './types.ts';

/** Who is asking, for which repository. */
export interface AuthContext {
  /** Host the API requests go to (registry-1.docker.io). */
  apiHost: string;
  /** Registry name as in references (docker.io), for credential lookup and messages. */
  registry: string;
  repository?: string;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

const MIN_TOKEN_LIFETIME_S = 60;
const EXPIRY_MARGIN_MS = 10_000;
const CLIENT_ID = 'berth';
/** A token answer is a few KB of JSON (a JWT); a token service is not trusted with memory. */
export const MAX_TOKEN_RESPONSE_BYTES = 1 << 20;

export function scopeFor(repository: string | undefined): string | undefined {
  return repository === undefined ? undefined : `repository:${repository}:pull`;
}

function basic(c: { username: string; password: string }): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}

export class Authenticator {
  private readonly challenges = new Map<string, Challenge>();
  private readonly tokens = new Map<string, Promise<CachedToken>>();
  private readonly transport: Transport;
  private readonly lookup: CredentialLookup;
  /** Sends an idempotent request with the client's retry policy. */
  private readonly retrying: (fn: () => Promise<SendResult>, signal?: AbortSignal) => Promise<SendResult>;
  private readonly now: () => number;

  constructor(opts: {
    transport: Transport;
    credentials?: CredentialLookup;
    retrying: (fn: () => Promise<SendResult>, signal?: AbortSignal) => Promise<SendResult>;
    now?: () => number;
  }) {
    this.transport = opts.transport;
    this.lookup = opts.credentials ?? (() => undefined);
    this.retrying = opts.retrying;
    this.now = opts.now ?? Date.now;
  }

  /** Authorization to send up front, based on what the host asked for before (if anything). */
  async current(ctx: AuthContext, signal?: AbortSignal): Promise<string | undefined> {
    const ch = this.challenges.get(ctx.apiHost);
    if (!ch) return undefined;
    return this.authorize(ctx, ch, false, signal);
  }

  /**
   * Answers a 401. Returns the Authorization to retry with, or undefined when there is
   * nothing new to try (no credentials for Basic, unknown scheme).
   */
  async challenge(ctx: AuthContext, header: string | string[] | undefined, signal?: AbortSignal): Promise<string | undefined> {
    const all = parseWwwAuthenticate(header);
    const ch = all.find((c) => c.scheme === 'bearer') ?? all.find((c) => c.scheme === 'basic');
    if (!ch) return undefined;
    this.challenges.set(ctx.apiHost, ch);
    return this.authorize(ctx, ch, true, signal);
  }

  async credentialsFor(ctx: AuthContext): Promise<Credentials | undefined> {
    return this.lookup(ctx.registry, ctx.repository);
  }

  private async authorize(ctx: AuthContext, ch: Challenge, fresh: boolean, signal?: AbortSignal): Promise<string | undefined> {
    if (ch.scheme === 'basic') {
      const creds = await this.credentialsFor(ctx);
      return creds && 'username' in creds ? basic(creds) : undefined;
    }
    const scope = scopeFor(ctx.repository) ?? ch.params.scope;
    const key = `${ctx.apiHost}|${scope ?? ''}`;
    const cached = this.tokens.get(key);
    if (cached && !fresh) {
      try {
        const t = await cached;
        if (t.expiresAt > this.now()) return `Bearer ${t.token}`;
      } catch {
        // fall through and ask again
      }
    }
    const p = this.fetchToken(ctx, ch, scope, signal);
    this.tokens.set(key, p);
    p.catch(() => {
      if (this.tokens.get(key) === p) this.tokens.delete(key);
    });
    return `Bearer ${(await p).token}`;
  }

  private async fetchToken(ctx: AuthContext, ch: Challenge, scope: string | undefined, signal?: AbortSignal): Promise<CachedToken> {
    const realmStr = ch.params.realm;
    let realm: URL;
    try {
      realm = new URL(realmStr ?? '');
    } catch {
      throw new BerthError('REGISTRY_ERROR', `registry ${ctx.registry} sent a Bearer challenge without a valid realm (${redactUrl(realmStr ?? 'none')})`, {
        details: { registry: ctx.registry },
      });
    }
    const creds = await this.credentialsFor(ctx);
    const service = ch.params.service;
    let res: SendResult;
    if (creds && 'identitytoken' in creds) {
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identitytoken, client_id: CLIENT_ID });
      if (service) form.set('service', service);
      if (scope) form.set('scope', scope);
      res = await this.retrying(() => this.transport.send(realm, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: form.toString(),
        signal,
        registry: ctx.registry,
      }), signal);
    } else {
      const url = new URL(realm);
      if (service) url.searchParams.set('service', service);
      if (scope) url.searchParams.set('scope', scope);
      res = await this.retrying(() => this.transport.send(url, {
        headers: { accept: 'application/json' },
        authorization: creds ? basic(creds) : undefined,
        signal,
        registry: ctx.registry,
      }), signal);
    }
    const ok = res.status === 200;
    const body = await readLimited(res.body, ok ? MAX_TOKEN_RESPONSE_BYTES : 64 * 1024, `token answer from ${realm.host} for ${ctx.registry}`, !ok);
    if (res.status === 401 || res.status === 403) {
      throw new BerthError('UNAUTHORIZED', creds
        ? `authentication to ${ctx.registry} failed: credentials rejected by ${realm.host}`
        : `anonymous access to ${ctx.registry} denied by ${realm.host}; log in first (berth login ${ctx.registry})`, {
        details: { registry: ctx.registry, status: res.status, realm: redactUrl(realm) },
      });
    }
    if (res.status !== 200) {
      throw httpError(res.status, body, { registry: ctx.registry, repository: ctx.repository, kind: 'token', url: res.url.href });
    }
    let j: { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
    try {
      j = JSON.parse(body.toString('utf8')) as typeof j;
    } catch (e) {
      throw new BerthError('REGISTRY_ERROR', `token service ${realm.host} for ${ctx.registry} returned invalid JSON`, { cause: e });
    }
    const token = typeof j.token === 'string' && j.token !== '' ? j.token : typeof j.access_token === 'string' ? j.access_token : '';
    if (token === '') throw new BerthError('REGISTRY_ERROR', `token service ${realm.host} for ${ctx.registry} returned no token`);
    const lifetime = Math.max(typeof j.expires_in === 'number' ? j.expires_in : 0, MIN_TOKEN_LIFETIME_S);
    return { token, expiresAt: this.now() + lifetime * 1000 - EXPIRY_MARGIN_MS };
  }
}
