/**
 * @module registry/client
 * Pull side of the OCI distribution API (Docker Registry HTTP API v2): manifests by tag or
 * digest, blobs as streams with Range resume, and a /v2/ ping for `berth login`.
 *
 * Integrity: the bytes are the truth. A manifest fetched by digest must hash to it; one
 * fetched by tag is named by the sha256 of its bytes, and a Docker-Content-Digest header
 * that disagrees is a DIGEST_MISMATCH. Blob bodies are handed out unverified (streaming);
 * the content store verifies them on commit.
 *
 * Retries: idempotent requests (manifest and token GETs, blob GETs until their body is
 * handed out) are retried on 429, 5xx and transient network errors with backoff (see
 * retry.ts). Failures after a blob body started are the caller's to retry, with `offset`.
 */
import { channel } from 'node:diagnostics_channel';
import { createHash } from 'node:crypto';
import { BerthError, isBerthError } from '../base/errors.ts';
import { digestAlgorithm, isDigest, type Digest } from '../base/digest.ts';
import { MANIFEST_ACCEPT } from '../oci/media-types.ts';
import { registryApiHost } from '../reference/index.ts';
import { Authenticator, type AuthContext } from './auth.ts';
import { httpError, isRetryableNetworkError, type RequestSubject } from './http-errors.ts';
import { checkManifestType, readLimited, MAX_MANIFEST_BYTES } from './manifest-check.ts';
import {
  abortableSleep, isRetryableStatus, parseRetryAfter, retryDelay,
  DEFAULT_BASE_DELAY_MS, DEFAULT_MAX_DELAY_MS, DEFAULT_RETRIES, type RetryPolicy,
} from './retry.ts';
import { Transport, type SendResult } from './transport.ts';
import type {
  BlobDescriptor, Credentials, FetchBlobOptions, ManifestResult, RegistryClientOptions, RepoLocation,
} from './types.ts';
import type { Readable } from 'node:stream';

/** Published before each retry: { registry, url, attempt, delayMs, reason }. */
export const retryChannel = channel('berth:registry:retry');

export class RegistryClient {
  private readonly transport: Transport;
  private readonly auth: Authenticator;
  private readonly policy: RetryPolicy;

  constructor(opts: RegistryClientOptions = {}) {
    this.transport = new Transport({ insecure: opts.insecure, userAgent: opts.userAgent, timeouts: opts.timeouts });
    this.policy = {
      retries: opts.retries ?? DEFAULT_RETRIES,
      baseDelayMs: opts.retryBaseDelayMs ?? DEFAULT_BASE_DELAY_MS,
      maxDelayMs: opts.retryMaxDelayMs ?? DEFAULT_MAX_DELAY_MS,
      sleep: opts.sleep ?? abortableSleep,
    };
    this.auth = this.newAuthenticator(opts.credentials);
  }

  private newAuthenticator(credentials: RegistryClientOptions['credentials']): Authenticator {
    return new Authenticator({ transport: this.transport, credentials, retrying: (fn, signal) => this.retrying(fn, signal) });
  }

  /** Fetches a manifest or index by tag or digest (see module comment for integrity rules). */
  async getManifest(ref: RepoLocation, reference: string, opts: { signal?: AbortSignal } = {}): Promise<ManifestResult> {
    const byDigest = isDigest(reference);
    const subject: RequestSubject = { registry: ref.registry, repository: ref.repository, kind: 'manifest', target: reference };
    const res = await this.exchange(ref, `/v2/${ref.repository}/manifests/${reference}`, { accept: MANIFEST_ACCEPT }, subject, opts.signal);
    const what = `${ref.registry}/${ref.repository}${byDigest ? '@' : ':'}${reference}`;
    if (res.status !== 200) {
      throw httpError(res.status, await readLimited(res.body, 64 * 1024, 'error body', true), { ...subject, url: res.url.href });
    }
    const bytes = await readLimited(res.body, MAX_MANIFEST_BYTES, `manifest ${what}`);
    const mediaType = checkManifestType(res.headers['content-type'], bytes, what);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
    const claimed = byDigest ? reference : headerValue(res.headers['docker-content-digest']);
    if (claimed !== undefined && claimed !== '') {
      if (!isDigest(claimed)) {
        throw new BerthError('REGISTRY_ERROR', `registry ${ref.registry} sent an invalid Docker-Content-Digest "${claimed}" for ${what}`);
      }
      const alg = digestAlgorithm(claimed);
      const actual = alg === 'sha256' ? digest : `${alg}:${createHash(alg).update(bytes).digest('hex')}`;
      if (actual !== claimed) {
        throw new BerthError('DIGEST_MISMATCH', `manifest ${what}: content hashes to ${actual}, expected ${claimed}`, {
          details: { expected: claimed, actual, registry: ref.registry, repository: ref.repository },
        });
      }
    }
    return { mediaType, digest, bytes };
  }

  /** Streams a blob; `start` is where the body begins (offset if the server honoured Range, else 0). */
  async fetchBlob(ref: RepoLocation, desc: BlobDescriptor, opts: FetchBlobOptions = {}): Promise<{ body: Readable; start: number }> {
    const offset = opts.offset ?? 0;
    const headers: Record<string, string> = { accept: '*/*' };
    if (offset > 0) headers.range = `bytes=${offset}-`;
    const subject: RequestSubject = { registry: ref.registry, repository: ref.repository, kind: 'blob', target: desc.digest };
    const res = await this.exchange(ref, `/v2/${ref.repository}/blobs/${desc.digest}`, headers, subject, opts.signal);
    if (res.status === 200) return { body: res.body, start: 0 };
    if (res.status === 206 && offset > 0) {
      const m = /^bytes (\d+)-/.exec(headerValue(res.headers['content-range']) ?? '');
      if (m && Number(m[1]) === offset) return { body: res.body, start: offset };
      res.body.destroy();
      throw new BerthError('REGISTRY_ERROR', `registry ${ref.registry} answered a range request for ${ref.registry}/${ref.repository}@${desc.digest} with an unexpected Content-Range "${headerValue(res.headers['content-range']) ?? ''}"`);
    }
    const body = await readLimited(res.body, 64 * 1024, 'error body', true);
    throw httpError(res.status, body, { ...subject, url: res.url.href });
  }

  /** GET /v2/ with the configured credentials; returns if the registry accepts us. */
  async ping(host: string, opts: { signal?: AbortSignal } = {}): Promise<void> {
    await this.pingWith(this.auth, host, opts.signal);
  }

  /** Checks that credentials work for host (for `berth login`), without caching anything. */
  async checkLogin(host: string, credentials: Credentials, opts: { signal?: AbortSignal } = {}): Promise<void> {
    await this.pingWith(this.newAuthenticator(() => credentials), host, opts.signal);
  }

  async close(): Promise<void> {
    await this.transport.close();
  }

  private async pingWith(auth: Authenticator, host: string, signal?: AbortSignal): Promise<void> {
    const loc = { registry: host, repository: '' };
    const subject: RequestSubject = { registry: host, kind: 'ping' };
    const res = await this.exchange(loc, '/v2/', { accept: 'application/json' }, subject, signal, auth);
    const body = await readLimited(res.body, 64 * 1024, 'ping body', true);
    if (res.status === 200) return;
    throw httpError(res.status, body, { ...subject, url: res.url.href });
  }

  /** One API request with retries and the 401 dance. The caller owns the response body. */
  private async exchange(
    ref: RepoLocation, path: string, headers: Record<string, string>, subject: RequestSubject,
    signal?: AbortSignal, auth: Authenticator = this.auth,
  ): Promise<SendResult> {
    const ctx: AuthContext = { apiHost: registryApiHost(ref.registry), registry: ref.registry, repository: ref.repository || undefined };
    const send = (authorization: string | undefined): Promise<SendResult> => this.retrying(
      () => this.transport.sendToHost(ctx.apiHost, path, { headers, authorization, signal, registry: ref.registry }), signal);
    const first = await auth.current(ctx, signal);
    const res = await send(first);
    if (res.status !== 401) return res;
    await res.body.dump({ limit: 64 * 1024 }).catch(() => {});
    const next = await auth.challenge(ctx, res.headers['www-authenticate'], signal);
    if (next === undefined) throw this.unauthorized(ctx, subject, false);
    const again = await send(next);
    if (again.status !== 401) return again;
    await again.body.dump({ limit: 64 * 1024 }).catch(() => {});
    throw this.unauthorized(ctx, subject, (await auth.credentialsFor(ctx)) !== undefined);
  }

  private unauthorized(ctx: AuthContext, s: RequestSubject, hadCredentials: boolean): BerthError {
    const what = s.repository ? `${ctx.registry}/${s.repository}` : ctx.registry;
    return new BerthError('UNAUTHORIZED', hadCredentials
      ? `authentication to ${ctx.registry} failed: credentials rejected for ${what}`
      : `pull access denied for ${what}: repository does not exist or requires authentication (berth login ${ctx.registry})`,
    { details: { registry: ctx.registry, repository: s.repository, status: 401 } });
  }

  /** Runs an idempotent exchange, retrying 429/5xx and transient network errors. */
  private async retrying(fn: () => Promise<SendResult>, signal?: AbortSignal): Promise<SendResult> {
    for (let attempt = 0; ; attempt++) {
      let res: SendResult;
      try {
        res = await fn();
      } catch (e) {
        if (attempt >= this.policy.retries || signal?.aborted || !isRetryableNetworkError(e)) throw e;
        await this.pause(attempt, undefined, isBerthError(e) ? e.message : String(e), signal);
        continue;
      }
      if (!isRetryableStatus(res.status) || attempt >= this.policy.retries) return res;
      const retryAfter = parseRetryAfter(res.headers['retry-after']);
      await res.body.dump({ limit: 64 * 1024 }).catch(() => {});
      await this.pause(attempt, retryAfter, `HTTP ${res.status} from ${res.url.host}`, signal);
    }
  }

  private async pause(attempt: number, retryAfterMs: number | undefined, reason: string, signal?: AbortSignal): Promise<void> {
    const delayMs = retryDelay(this.policy, attempt, retryAfterMs);
    if (retryChannel.hasSubscribers) retryChannel.publish({ attempt: attempt + 1, delayMs, reason });
    try {
      await this.policy.sleep(delayMs, signal);
    } catch (e) {
      throw new BerthError('CANCELLED', 'cancelled', { cause: e });
    }
  }
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
