/**
 * @module registry/types
 * The shapes the registry client is configured with and answers in. Credentials are looked
 * up lazily, per registry host (and repository, for auth files keyed `host/repo`), so a pull
 * from a public registry never reads an auth file it does not need.
 */
import type { Digest } from '../base/digest.ts';

export type Credentials =
  | { username: string; password: string }
  /** An OAuth2 refresh token (Docker's `identitytoken`), exchanged at the token realm. */
  | { identitytoken: string };

/** host is the registry name as written in references (`docker.io`, `localhost:5000`). */
export type CredentialLookup = (
  host: string,
  repository?: string,
) => Credentials | undefined | Promise<Credentials | undefined>;

/** Where a repository lives. An ImageReference satisfies this; so does a mirror endpoint. */
export interface RepoLocation {
  /** Registry host[:port] as written in references; docker.io is mapped to its API host. */
  readonly registry: string;
  readonly repository: string;
}

export interface RegistryTimeouts {
  /** TCP + TLS connect (default 30 s). */
  connectMs?: number;
  /** From request sent to response headers (default 60 s). */
  headersMs?: number;
  /** Longest silence while reading a body (default 120 s). */
  bodyMs?: number;
}

export interface RegistryClientOptions {
  credentials?: CredentialLookup;
  /** True when the host may be reached without TLS verification or over plain HTTP. */
  insecure?: (host: string) => boolean;
  userAgent?: string;
  /** Retries after the first attempt for idempotent requests (default 4). */
  retries?: number;
  timeouts?: RegistryTimeouts;
  /** Injectable for tests: waits between retries. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Backoff base (default 200 ms) and cap, including Retry-After (default 30 s). */
  retryBaseDelayMs?: number;
  retryMaxDelayMs?: number;
}

export interface ManifestResult {
  mediaType: string;
  /** sha256 of the bytes as received (the truth, whatever headers claimed). */
  digest: Digest;
  bytes: Buffer;
}

export interface BlobDescriptor {
  digest: Digest;
  size: number;
}

export interface FetchBlobOptions {
  /** Ask for the bytes from this offset on (resume). */
  offset?: number;
  signal?: AbortSignal;
}
