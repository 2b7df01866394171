/**
 * @module registry/transport
 * One HTTP exchange with a registry, its token realm or a blob redirect target, with the
 * transport-security policy in one place.
 *
 * Policy (decided here, like Docker's daemon and close to Podman):
 *  - HTTPS with certificate verification is the default for every host.
 *  - A host is "insecure" when insecure(host) says so (registries.conf `insecure = true`,
 *    `--tls-verify=false`): HTTPS is tried first with verification off, then plain HTTP.
 *  - Loopback hosts (localhost, 127.0.0.0/8, ::1) may also use plain HTTP: HTTPS (verified)
 *    is tried first, then HTTP, so a local `docker-registry` on :5000 just works.
 *  - The fallback happens only when HTTPS fails at the connection level (refused, TLS
 *    handshake, reset), never after an HTTP response, and never when the server presented
 *    a certificate (it speaks TLS; the certificate error is the one to report). The scheme that worked is remembered
 *    per host for the client's lifetime, so only the first request pays for the probe.
 *  - For a loopback host with verification on, a bare TLS handshake (no trust anchors, nothing
 *    sent) decides first: refused or not TLS goes straight to HTTP, as the HTTPS attempt
 *    would have; a host that completes it takes the verified HTTPS path.
 *  - Any other http:// URL (a redirect or token realm) is refused with INSECURE_BLOCKED.
 * Redirects are followed here by hand (at most 10) so that the Authorization header is sent
 * only to the origin it was meant for, never to blob storage or a CDN on another origin,
 * and a request body (the OAuth2 token POST, which carries a refresh token) is never
 * re-sent to another origin: such a redirect is refused. URLs in errors are redacted
 * (signed redirect URLs carry their signature in the query string).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { createAgents, destroyAgents, request, type HttpAgents, type HttpResponse, type ResponseBody } from './http.ts';
import { probeTls } from './tls-probe.ts';
import { BerthError } from '../base/errors.ts';
import { redactUrl } from '../base/redact.ts';
import { isCertificateError, isTlsError, networkError } from './http-errors.ts';
import type { RegistryTimeouts } from './types.ts';

export interface SendInit {
  method?: 'GET' | 'HEAD' | 'POST';
  headers?: Record<string, string>;
  /** Authorization header value; sent only to the first URL's origin. */
  authorization?: string;
  body?: string;
  signal?: AbortSignal;
  /** Registry name for error messages (docker.io for registry-1.docker.io). */
  registry: string;
}

export interface SendResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: ResponseBody;
  /** URL that produced this response (after redirects). */
  url: URL;
}

const MAX_REDIRECTS = 10;
const REDIRECT = new Set([301, 302, 303, 307, 308]);

export function isLoopbackHost(host: string): boolean {
  const hostname = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d+$/, '');
  return hostname === 'localhost' || hostname === '[::1]' || hostname === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

export class Transport {
  private readonly secure: HttpAgents;
  private readonly unverified: HttpAgents;
  private readonly connectTimeout: number;
  private readonly schemes = new Map<string, 'https:' | 'http:'>();
  private readonly insecure: (host: string) => boolean;
  private readonly userAgent: string;
  private readonly headersTimeout: number;
  private readonly bodyTimeout: number;

  constructor(opts: { insecure?: (host: string) => boolean; userAgent?: string; timeouts?: RegistryTimeouts }) {
    const connectTimeout = opts.timeouts?.connectMs ?? 30_000;
    this.connectTimeout = connectTimeout;
    this.secure = createAgents({ rejectUnauthorized: true });
    this.unverified = createAgents({ rejectUnauthorized: false });
    this.insecure = opts.insecure ?? (() => false);
    this.userAgent = opts.userAgent ?? 'berth/0.1';
    this.headersTimeout = opts.timeouts?.headersMs ?? 60_000;
    this.bodyTimeout = opts.timeouts?.bodyMs ?? 120_000;
  }

  plainHttpAllowed(host: string): boolean {
    return isLoopbackHost(host) || this.insecure(host);
  }

  /** Sends to https://host/path, falling back to http:// per the module policy. */
  async sendToHost(host: string, pathAndQuery: string, init: SendInit): Promise<SendResult> {
    const known = this.schemes.get(host);
    if (known) return this.send(new URL(`${known}//${host}${pathAndQuery}`), init);
    if (isLoopbackHost(host)) {
      // A local registry speaks plain HTTP as often as TLS. Finding out with an HTTPS
      // request costs node:tls, OpenSSL's first handshake and (verified) Node's root
      // certificates: 15-140 ms here. A hand-written ClientHello tells it without any of
      // them (tls-probe.ts); a host that speaks TLS takes the path below, verified unless
      // it is insecure. Remote insecure hosts keep HTTPS-then-HTTP: a probe would cost
      // them a round trip.
      const u = new URL(`https://${host}`);
      const spoken = await probeTls(u.hostname.replace(/^\[|\]$/g, ''), Number(u.port || 443), this.connectTimeout);
      if (spoken === 'plain') {
        const res = await this.send(new URL(`http://${host}${pathAndQuery}`), init).catch(() => undefined);
        if (res) {
          this.schemes.set(host, 'http:');
          return res;
        }
        // HTTP failed too: the path below gives the error it always gave
      }
    }
    try {
      const res = await this.send(new URL(`https://${host}${pathAndQuery}`), init);
      this.schemes.set(host, 'https:');
      return res;
    } catch (httpsErr) {
      if (!this.plainHttpAllowed(host) || !isConnectionLevel(httpsErr) || init.signal?.aborted) throw httpsErr;
      // A server that presented an untrusted certificate speaks TLS: plain HTTP would only
      // get "client sent an HTTP request to an HTTPS server". Report the certificate.
      if (isCertificateError((httpsErr as BerthError).cause)) throw httpsErr;
      try {
        const res = await this.send(new URL(`http://${host}${pathAndQuery}`), init);
        this.schemes.set(host, 'http:');
        return res;
      } catch (httpErr) {
        // A TLS failure says more than whatever plain HTTP to a TLS port produced.
        throw isTlsError(httpsErr) ? httpsErr : httpErr;
      }
    }
  }

  /** Sends to an absolute URL, following redirects; Authorization stays on the first origin. */
  async send(url: URL, init: SendInit): Promise<SendResult> {
    let current = url;
    let method = init.method ?? 'GET';
    let body = init.body;
    for (let hop = 0; ; hop++) {
      this.checkScheme(current, init.registry);
      const headers: Record<string, string> = { 'user-agent': this.userAgent, ...init.headers };
      if (init.authorization !== undefined && current.origin === url.origin) headers.authorization = init.authorization;
      let res: HttpResponse;
      try {
        res = await request(current, {
          method,
          headers,
          body: body ?? null,
          signal: init.signal,
          agents: this.insecure(current.host) ? this.unverified : this.secure,
          connectTimeout: this.connectTimeout,
          headersTimeout: this.headersTimeout,
          bodyTimeout: this.bodyTimeout,
        });
      } catch (e) {
        throw networkError(e, current, init.registry);
      }
      const location = res.headers.location;
      if (!REDIRECT.has(res.statusCode) || typeof location !== 'string') {
        return { status: res.statusCode, headers: res.headers, body: res.body, url: current };
      }
      await res.body.dump({ limit: 64 * 1024 }).catch(() => {});
      if (hop >= MAX_REDIRECTS) {
        throw new BerthError('REGISTRY_ERROR', `too many redirects from ${init.registry} (last: ${redactUrl(current)})`, {
          details: { registry: init.registry, url: redactUrl(current) },
        });
      }
      let next: URL;
      try {
        next = new URL(location, current);
      } catch {
        throw new BerthError('REGISTRY_ERROR', `${init.registry}: invalid redirect from ${redactUrl(current)}`, { details: { registry: init.registry } });
      }
      if (res.statusCode === 303) {
        method = 'GET';
        body = undefined;
      }
      if (body !== undefined && next.origin !== url.origin) {
        throw new BerthError('REGISTRY_ERROR',
          `${current.host} redirected a ${method} with a request body to another origin (${next.origin}); refusing to re-send it (talking to ${init.registry})`,
          { details: { registry: init.registry, url: redactUrl(current), location: redactUrl(next) } });
      }
      current = next;
    }
  }

  private checkScheme(url: URL, registry: string): void {
    if (url.protocol === 'https:') return;
    if (url.protocol === 'http:' && this.plainHttpAllowed(url.host)) return;
    throw new BerthError(
      url.protocol === 'http:' ? 'INSECURE_BLOCKED' : 'REGISTRY_ERROR',
      url.protocol === 'http:'
        ? `refusing plain HTTP to ${url.host} (while talking to ${registry}); mark the host insecure to allow it`
        : `unsupported URL scheme ${url.protocol} from ${registry}: ${redactUrl(url)}`,
      { details: { registry, url: redactUrl(url) } },
    );
  }

  async close(): Promise<void> {
    destroyAgents(this.secure);
    destroyAgents(this.unverified);
  }
}

function isConnectionLevel(e: unknown): boolean {
  const code = (e as BerthError).code;
  return code === 'CONNECTION_REFUSED' || code === 'TIMEOUT' || isTlsError((e as BerthError).cause);
}
