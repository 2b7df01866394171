/**
 * @module reference/reference
 * Image references parsed and normalized exactly as Docker and Podman do
 * (github.com/distribution/reference `ParseNormalizedNamed`), so that a name typed for
 * `docker pull` means the same image here: `busybox` is `docker.io/library/busybox:latest`.
 *
 * Grammar (distribution/reference):
 *   reference  := name [ ":" tag ] [ "@" digest ]
 *   name       := [domain "/"] path-component ["/" path-component]*
 *   domain     := host [":" port]      host := domain-name | IPv4 | "[" IPv6 "]"
 *   path-comp  := [a-z0-9]+ ( ( [._] | "__" | "-"+ ) [a-z0-9]+ )*
 *   tag        := [\w][\w.-]{0,127}
 * The first component is a domain only when it contains "." or ":", is "localhost", or
 * contains an uppercase letter (Docker's rule; "Foo/bar" names host "Foo"). Otherwise the
 * domain is docker.io, and a single-component docker.io path gets the "library/" prefix.
 * A reference with neither tag nor digest gets tag "latest". With both, the digest is what
 * is fetched and the tag is kept only for naming.
 */
import { BerthError } from '../base/errors.ts';
import { isDigest, type Digest } from '../base/digest.ts';

export const DEFAULT_REGISTRY = 'docker.io';
export const DEFAULT_TAG = 'latest';
/** Where the Docker Hub distribution API actually lives. */
export const DOCKER_HUB_API_HOST = 'registry-1.docker.io';
const LEGACY_DEFAULT_REGISTRY = 'index.docker.io';
const OFFICIAL_PREFIX = 'library/';
const NAME_MAX = 255;

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_NAME = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*$/;
const IPV6_BRACKETED = /^\[[a-fA-F0-9:]+\]$/;
const PORT = /^[0-9]+$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const ANONYMOUS_HEX = /^[a-f0-9]{64}$/;

/** A parsed, normalized image reference. Immutable. */
export interface ImageReference {
  /** Registry host as named in the reference, normalized (`docker.io`, `quay.io`, `localhost:5000`). */
  readonly registry: string;
  /** Repository path inside the registry (`library/busybox`). */
  readonly repository: string;
  readonly tag?: string;
  readonly digest?: Digest;
  /** `registry/repository`. */
  readonly name: string;
  /** Docker's short form: `busybox:latest`, `foo/bar@sha256:…`, `quay.io/x/y:1`. */
  readonly familiar: string;
  /** Full normalized form: `name:tag`, `name@digest` or `name:tag@digest`. */
  toString(): string;
}

class Ref implements ImageReference {
  readonly registry: string;
  readonly repository: string;
  readonly tag?: string;
  readonly digest?: Digest;

  constructor(registry: string, repository: string, tag: string | undefined, digest: Digest | undefined) {
    this.registry = registry;
    this.repository = repository;
    if (tag !== undefined) this.tag = tag;
    if (digest !== undefined) this.digest = digest;
    Object.freeze(this);
  }

  get name(): string {
    return `${this.registry}/${this.repository}`;
  }

  get familiar(): string {
    let short = this.name;
    if (this.registry === DEFAULT_REGISTRY) {
      short = this.repository.startsWith(OFFICIAL_PREFIX) && !this.repository.slice(OFFICIAL_PREFIX.length).includes('/')
        ? this.repository.slice(OFFICIAL_PREFIX.length)
        : this.repository;
    }
    return short + suffix(this.tag, this.digest);
  }

  toString(): string {
    return this.name + suffix(this.tag, this.digest);
  }

  toJSON(): string {
    return this.toString();
  }
}

function suffix(tag: string | undefined, digest: Digest | undefined): string {
  return (tag !== undefined ? `:${tag}` : '') + (digest !== undefined ? `@${digest}` : '');
}

function invalid(s: string, why: string): BerthError {
  return new BerthError('INVALID_REFERENCE', `invalid reference "${s}": ${why}`, { details: { reference: s } });
}

function validDomain(domain: string): boolean {
  let host = domain;
  const bracket = domain.lastIndexOf(']');
  const colon = domain.lastIndexOf(':');
  if (colon > bracket) {
    if (!PORT.test(domain.slice(colon + 1))) return false;
    host = domain.slice(0, colon);
  }
  return DOMAIN_NAME.test(host) || IPV6_BRACKETED.test(host);
}

/** Splits off the domain with Docker's rule (see module comment) and normalizes it. */
function splitDomain(name: string): [domain: string, path: string] {
  const i = name.indexOf('/');
  const first = i === -1 ? '' : name.slice(0, i);
  const isDomain = i !== -1 && (/[.:]/.test(first) || first === 'localhost' || first.toLowerCase() !== first);
  let domain = isDomain ? first : DEFAULT_REGISTRY;
  let path = isDomain ? name.slice(i + 1) : name;
  if (domain === LEGACY_DEFAULT_REGISTRY) domain = DEFAULT_REGISTRY;
  if (domain === DEFAULT_REGISTRY && !path.includes('/')) path = OFFICIAL_PREFIX + path;
  return [domain, path];
}

/** Parses and normalizes an image reference. Throws INVALID_REFERENCE with the reason. */
export function parseReference(s: string): ImageReference {
  if (s === '') throw invalid(s, 'empty reference');
  if (/\s/.test(s)) throw invalid(s, 'contains whitespace');
  if (ANONYMOUS_HEX.test(s)) throw invalid(s, 'cannot specify 64-byte hexadecimal strings (that is an image ID)');

  let rest = s;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    const d = rest.slice(at + 1);
    if (d.includes('@')) throw invalid(s, 'more than one "@"');
    if (!isDigest(d)) throw invalid(s, `bad digest "${d}" (want sha256:<64 lowercase hex> or sha512:<128 lowercase hex>)`);
    digest = d;
    rest = rest.slice(0, at);
  }

  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/') && colon > rest.lastIndexOf(']')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw invalid(s, `bad tag "${tag}" (want [A-Za-z0-9_][A-Za-z0-9_.-]{0,127})`);
  }

  if (rest === '') throw invalid(s, 'missing repository name');
  if (rest.length > NAME_MAX) throw invalid(s, `repository name longer than ${NAME_MAX} characters`);

  const [registry, repository] = splitDomain(rest);
  if (!validDomain(registry)) throw invalid(s, `bad registry host "${registry}"`);
  if (repository.toLowerCase() !== repository) throw invalid(s, `repository name "${repository}" must be lowercase`);
  for (const comp of repository.split('/')) {
    if (comp === '') throw invalid(s, 'empty path component in repository name');
    if (!PATH_COMPONENT.test(comp)) {
      throw invalid(s, `bad path component "${comp}" (want lowercase letters, digits and single . _ __ or - separators)`);
    }
  }

  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG;
  return new Ref(registry, repository, tag, digest);
}

/** Same repository, different tag/digest (e.g. pin a tag to what it resolved to). */
export function withTarget(ref: ImageReference, target: { tag?: string; digest?: Digest }): ImageReference {
  return new Ref(ref.registry, ref.repository, target.tag, target.digest);
}

/** The host to send distribution API requests to for a registry name (docker.io → registry-1.docker.io). */
export function registryApiHost(registry: string): string {
  return registry === DEFAULT_REGISTRY || registry === LEGACY_DEFAULT_REGISTRY ? DOCKER_HUB_API_HOST : registry;
}

/** What to fetch: the digest when there is one, else the tag. */
export function fetchTarget(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? DEFAULT_TAG;
}
