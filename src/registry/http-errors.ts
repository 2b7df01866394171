/**
 * @module registry/http-errors
 * Turns what a registry or the network did into a BerthError with a stable code and a
 * one-line message naming the registry, repository and tag or digest. Registry error
 * bodies (`{"errors":[{"code":"MANIFEST_UNKNOWN","message":...}]}`) are preferred over the
 * bare status, because several registries answer 401 or 404 for the same condition.
 */
import { BerthError, isBerthError, type ErrorCode } from '../base/errors.ts';
import { redactText, redactUrl } from '../base/redact.ts';

export interface RegistryErrorEntry {
  code: string;
  message: string;
}

/** What a failed request was about, for messages. */
export interface RequestSubject {
  /** Registry name as the user wrote it (docker.io, localhost:5000). */
  registry: string;
  repository?: string;
  /** `manifest` (tag or digest), `blob` (digest), `token`, `ping`. */
  kind: 'manifest' | 'blob' | 'token' | 'ping';
  target?: string;
  url?: string;
}

export function parseErrorBody(body: Buffer | string): RegistryErrorEntry[] {
  try {
    const j = JSON.parse(body.toString()) as { errors?: Array<{ code?: unknown; message?: unknown }> };
    if (!Array.isArray(j.errors)) return [];
    return j.errors.map((e) => ({ code: String(e.code ?? ''), message: String(e.message ?? '') }));
  } catch {
    return [];
  }
}

function subjectName(s: RequestSubject): string {
  if (!s.repository) return s.registry;
  const base = `${s.registry}/${s.repository}`;
  if (s.target === undefined) return base;
  return s.target.includes(':') ? `${base}@${s.target}` : `${base}:${s.target}`;
}

const NOT_FOUND_CODES = new Set(['MANIFEST_UNKNOWN', 'NAME_UNKNOWN', 'BLOB_UNKNOWN', 'TAG_INVALID', 'NOT_FOUND']);
const DENIED_CODES = new Set(['UNAUTHORIZED', 'DENIED']);

/** Maps a final (non-retried) HTTP error status + body to a BerthError. */
export function httpError(status: number, body: Buffer | string, s: RequestSubject): BerthError {
  const entries = parseErrorBody(body);
  const first = entries[0];
  // a registry's own error text may echo what it was sent (a token, a signed URL)
  const registryMsg = first ? redactText(`${first.code}${first.message ? `: ${first.message}` : ''}`) : '';
  const details: Record<string, unknown> = {
    status, registry: s.registry, url: s.url === undefined ? undefined : redactUrl(s.url),
    errors: entries.map((e) => ({ code: e.code, message: redactText(e.message) })),
  };
  const codes = new Set(entries.map((e) => e.code));
  const what = subjectName(s);

  if ([...codes].some((c) => NOT_FOUND_CODES.has(c)) || status === 404) {
    const msg = s.kind === 'blob' ? `blob not found: ${what}` : `repository or tag not found: ${what}`;
    return new BerthError('MANIFEST_UNKNOWN', msg, { details });
  }
  if (status === 403 || codes.has('DENIED')) {
    return new BerthError('UNAUTHORIZED', `access denied to ${what}${registryMsg ? ` (${registryMsg})` : ''}`, { details });
  }
  if (status === 401 || [...codes].some((c) => DENIED_CODES.has(c))) {
    return new BerthError('UNAUTHORIZED', `authentication required for ${what}: credentials missing or rejected by ${s.registry}`, { details });
  }
  if (codes.has('MANIFEST_INVALID') || codes.has('UNSUPPORTED')) {
    return new BerthError('UNSUPPORTED', `registry ${s.registry} rejected the request for ${what}: ${registryMsg}`, { details });
  }
  return new BerthError('REGISTRY_ERROR', `registry ${s.registry} answered HTTP ${status} for ${what}${registryMsg ? `: ${registryMsg}` : ''}`, { details });
}

/** Flattens AggregateError (happy-eyeballs connects) and undici wrappers to the first system error. */
function rootError(e: unknown): NodeJS.ErrnoException & { hostname?: string } {
  let err = e as NodeJS.ErrnoException & { hostname?: string; errors?: unknown[] };
  for (let i = 0; i < 4; i++) {
    if (err && !err.code && Array.isArray(err.errors) && err.errors.length > 0) err = err.errors[0] as typeof err;
    else if (err && (!err.code || err.code === 'UND_ERR_SOCKET') && err.cause && typeof err.cause === 'object') err = err.cause as typeof err;
    else break;
  }
  return err;
}

export function errorCodeOf(e: unknown): string {
  const c = rootError(e)?.code;
  return typeof c === 'string' ? c : '';
}

const TLS_CODE = /^(ERR_SSL_|ERR_TLS_|EPROTO$)|CERT|SELF_SIGNED|UNABLE_TO_(VERIFY|GET)|DEPTH_ZERO/;

export function isTlsError(e: unknown): boolean {
  return TLS_CODE.test(errorCodeOf(e));
}

/** The server spoke TLS but its certificate was not trusted (as opposed to "not TLS at all"). */
export function isCertificateError(e: unknown): boolean {
  return /CERT|SELF_SIGNED|UNABLE_TO_(VERIFY|GET)|DEPTH_ZERO|ALTNAME/.test(errorCodeOf(e));
}

/** Transport failures worth another attempt (before any body byte was handed out). */
export function isRetryableNetworkError(e: unknown): boolean {
  const c = isBerthError(e) ? String(e.details.errno ?? '') : errorCodeOf(e);
  return ['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT',
    'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_CLOSED', 'ERR_HEADERS_TIMEOUT'].includes(c);
}

/** Maps a transport error talking to url (origin) to a BerthError naming host and port. */
export function networkError(e: unknown, url: URL, registry: string): BerthError {
  if (isBerthError(e)) return e;
  const err = rootError(e);
  const code = errorCodeOf(e);
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  const hostPort = `${url.hostname}:${port}`;
  const details = { registry, url: redactUrl(url), errno: code };
  const mk = (c: ErrorCode, m: string): BerthError => new BerthError(c, m, { cause: e, details });
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME' || code === 'EAI_FAIL') {
    return mk('UNKNOWN_HOST', `unknown host ${url.hostname}: DNS lookup failed (${code})`);
  }
  if (code === 'ECONNREFUSED') return mk('CONNECTION_REFUSED', `connection refused: ${hostPort}`);
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return mk('CONNECTION_REFUSED', `host unreachable: ${hostPort} (${code})`);
  if (TLS_CODE.test(code)) {
    return mk('CONNECTION_REFUSED', `TLS: cannot establish a secure connection to ${hostPort}: ${err.message} (for a registry without valid TLS use --tls-verify=false)`);
  }
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ETIMEDOUT') return mk('TIMEOUT', `timed out connecting to ${hostPort}`);
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'ERR_HEADERS_TIMEOUT') return mk('TIMEOUT', `timed out waiting for ${hostPort} to answer`);
  if (code === 'UND_ERR_BODY_TIMEOUT' || code === 'ERR_BODY_TIMEOUT') return mk('TIMEOUT', `timed out reading from ${hostPort}`);
  if (code === 'ABORT_ERR' || code === 'UND_ERR_ABORTED' || (err as Error)?.name === 'AbortError') return mk('CANCELLED', 'cancelled');
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE') {
    return mk('CONNECTION_REFUSED', `connection to ${hostPort} closed unexpectedly (${code})`);
  }
  return mk('REGISTRY_ERROR', `request to ${hostPort} failed: ${redactText((err as Error)?.message ?? String(e))}`);
}
