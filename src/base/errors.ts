/**
 * @module base/errors
 * One error model for all of berth. Every failure a user can cause or meet carries a
 * stable `code` from a closed set; the CLI maps codes to documented exit statuses
 * (see EXIT_CODES and docs/exit-codes.md). Broken invariants are `BugError`, never
 * thrown for user input. Messages name the thing that failed; callers add context
 * with `wrap()` ("pulling docker.io/library/busybox:latest: ...").
 */

export type ErrorCode =
  | 'INVALID_REFERENCE' // malformed image reference
  | 'INVALID_ARGUMENT' // bad flag, bad value, bad name
  | 'NOT_FOUND' // local object (image, container, blob) does not exist
  | 'ALREADY_EXISTS'
  | 'UNKNOWN_HOST' // DNS lookup failed
  | 'CONNECTION_REFUSED' // TCP connect refused / unreachable / TLS failure
  | 'MANIFEST_UNKNOWN' // registry: unknown repository, tag or digest
  | 'UNAUTHORIZED' // registry: credentials missing or wrong, access denied
  | 'DIGEST_MISMATCH' // content does not hash to its descriptor
  | 'UNSUPPORTED' // unsupported media type, platform, layer compression
  | 'NO_SPACE' // ENOSPC / EDQUOT
  | 'REGISTRY_ERROR' // registry answered with an error we cannot classify (5xx after retries, 4xx other)
  | 'TIMEOUT'
  | 'CORRUPT' // store or layout inconsistent (fsck findings, bad layout)
  | 'INSECURE_BLOCKED' // plain HTTP to a registry not marked insecure
  | 'FAILED_PRECONDITION' // e.g. PID 1 is not systemd, image in use
  | 'PERMISSION_DENIED'
  | 'HOSTILE_LAYER' // a layer tries to escape its directory or is a bomb
  | 'CANCELLED'
  | 'INTERNAL';

/**
 * Exit status per code. 1 is reserved for "generic failure / container exit" and 2 for
 * usage errors from the argument parser; the rest are stable and documented in the README.
 */
export const EXIT_CODES: Readonly<Record<ErrorCode, number>> = {
  INVALID_ARGUMENT: 2,
  INVALID_REFERENCE: 3,
  NOT_FOUND: 4,
  ALREADY_EXISTS: 5,
  UNKNOWN_HOST: 6,
  CONNECTION_REFUSED: 7,
  MANIFEST_UNKNOWN: 8,
  UNAUTHORIZED: 9,
  DIGEST_MISMATCH: 10,
  UNSUPPORTED: 11,
  NO_SPACE: 12,
  REGISTRY_ERROR: 13,
  TIMEOUT: 14,
  CORRUPT: 15,
  INSECURE_BLOCKED: 16,
  FAILED_PRECONDITION: 17,
  PERMISSION_DENIED: 18,
  HOSTILE_LAYER: 19,
  CANCELLED: 130,
  INTERNAL: 70,
};

const BRAND = Symbol.for('berth.error');

export class BerthError extends Error {
  readonly code: ErrorCode;
  /** Extra machine-readable facts (status, digest, url, ...) for --json output and tests. */
  readonly details: Readonly<Record<string, unknown>>;
  readonly [BRAND] = true;

  constructor(code: ErrorCode, message: string, opts: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'BerthError';
    this.code = code;
    this.details = opts.details ?? {};
  }
}

/** Broken invariant inside berth. Never thrown for invalid user input. */
export class BugError extends Error {
  constructor(message: string) {
    super(`internal error (please report): ${message}`);
    this.name = 'BugError';
  }
}

export function isBerthError(e: unknown, code?: ErrorCode): e is BerthError {
  return typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[BRAND] === true &&
    (code === undefined || (e as BerthError).code === code);
}

export function berthError(code: ErrorCode, message: string, details?: Record<string, unknown>, cause?: unknown): BerthError {
  return new BerthError(code, message, { details, cause });
}

/** Adds context in front of a BerthError's message, keeping its code; converts other errors. */
export function wrap(context: string, e: unknown): BerthError {
  if (isBerthError(e)) {
    return new BerthError(e.code, `${context}: ${e.message}`, { cause: e.cause ?? e, details: e.details });
  }
  const fromSys = fromSystemError(e);
  return new BerthError(fromSys.code, `${context}: ${fromSys.message}`, { cause: e, details: fromSys.details });
}

/** Maps Node system errors (errno codes) and undici errors to berth codes. */
export function fromSystemError(e: unknown): BerthError {
  if (isBerthError(e)) return e;
  const err = e as NodeJS.ErrnoException & { code?: string };
  const sys = typeof err?.code === 'string' ? err.code : '';
  const msg = err instanceof Error ? err.message : String(e);
  switch (sys) {
    case 'ENOSPC':
    case 'EDQUOT':
      return new BerthError('NO_SPACE', `no space left on device${err.path ? ` (${err.path})` : ''}`, { cause: e });
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new BerthError('UNKNOWN_HOST', `unknown host ${(err as { hostname?: string }).hostname ?? ''}`.trim(), { cause: e });
    case 'ECONNREFUSED':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ECONNRESET':
      return new BerthError('CONNECTION_REFUSED', msg, { cause: e });
    case 'ENOENT':
      return new BerthError('NOT_FOUND', msg, { cause: e });
    case 'EACCES':
    case 'EPERM':
      return new BerthError('PERMISSION_DENIED', msg, { cause: e });
    case 'ETIMEDOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return new BerthError('TIMEOUT', msg, { cause: e });
    case 'ABORT_ERR':
      return new BerthError('CANCELLED', 'cancelled', { cause: e });
    default:
      return new BerthError('INTERNAL', msg, { cause: e });
  }
}
