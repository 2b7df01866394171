/**
 * @module oci/validate
 * Untrusted image metadata (manifests, indexes and configs from a registry, an OCI layout
 * or a docker-archive) is checked here, once, before any of it is used. A digest names
 * files and URLs (blobs/<alg>/<hex>, locks/<hex>.lock, /v2/…/blobs/<digest>), so every
 * digest must be `sha256:[a-f0-9]{64}` or `sha512:[a-f0-9]{128}` (the algorithms the OCI
 * spec registers) before anyone sees it: `diff_ids: ["sha256:../../x"]` would otherwise
 * name a path outside the store. Field types are checked against the image spec, so a
 * numeric `User` or a map where a list belongs is a CORRUPT error that names the field,
 * not a TypeError (exit 70) deep inside the runtime. `null` for an optional field means
 * absent (Docker writes `"Cmd": null`); such keys are dropped from the returned object.
 *
 * The parse* functions also cap the document size: blobs that arrive without a trusted
 * size (a registry's manifest, a layout's index.json, a docker-archive's JSON) must not
 * be read into memory unbounded. 4 MiB for manifests and indexes is containerd's limit.
 */
import { isDigest, type Digest } from '../base/digest.ts';
import { BerthError } from '../base/errors.ts';
import type { Descriptor, ImageConfig, Index, Manifest, Platform } from './types.ts';

/** Largest manifest or index accepted (containerd: 4 MiB). */
export const MAX_MANIFEST_BYTES = 4 << 20;
/** Largest image config accepted (history of huge images stays far below this). */
export const MAX_CONFIG_BYTES = 32 << 20;
/** Most layers an image may have (Docker's overlay2 limit is 125; generous). */
export const MAX_LAYERS = 1000;

type Obj = Record<string, unknown>;

function corrupt(what: string, field: string, problem: string): BerthError {
  return new BerthError('CORRUPT', `${what}: field "${field}" ${problem}`, { details: { field } });
}

function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map';
  return `a ${typeof v}`;
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses a JSON document of at most max bytes; CORRUPT otherwise. */
export function parseJSONDocument(bytes: Buffer, what: string, max: number): unknown {
  if (bytes.length > max) throw new BerthError('CORRUPT', `${what} is too large (${bytes.length} bytes, limit ${max})`, { details: { size: bytes.length, limit: max } });
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch (e) {
    throw new BerthError('CORRUPT', `${what} is not valid JSON`, { cause: e });
  }
}

/** A digest field: sha256/sha512, lowercase hex of the right length. */
export function checkDigest(v: unknown, what: string, field: string): Digest {
  if (typeof v !== 'string') throw corrupt(what, field, `must be a digest string, not ${kind(v)}`);
  if (!isDigest(v)) throw corrupt(what, field, `is not a valid digest (${JSON.stringify(v.slice(0, 80))}; want sha256:<64 hex> or sha512:<128 hex>)`);
  return v;
}

function str(o: Obj, key: string, what: string, field: string, required = false): void {
  const v = o[key];
  if (v === undefined || v === null) {
    if (required) throw corrupt(what, field, 'is missing');
    delete o[key];
    return;
  }
  if (typeof v !== 'string') throw corrupt(what, field, `must be a string, not ${kind(v)}`);
}

function strList(o: Obj, key: string, what: string, field: string): void {
  const v = o[key];
  if (v === undefined || v === null) {
    delete o[key];
    return;
  }
  if (!Array.isArray(v)) throw corrupt(what, field, `must be a list of strings, not ${kind(v)}`);
  v.forEach((s, i) => {
    if (typeof s !== 'string') throw corrupt(what, `${field}[${i}]`, `must be a string, not ${kind(s)}`);
  });
}

/** A map; values checked by `value` (which returns a problem or undefined). */
function map(o: Obj, key: string, what: string, field: string, value: (v: unknown) => string | undefined): void {
  const v = o[key];
  if (v === undefined || v === null) {
    delete o[key];
    return;
  }
  if (!isObj(v)) throw corrupt(what, field, `must be a map, not ${kind(v)}`);
  for (const [k, x] of Object.entries(v)) {
    const problem = value(x);
    if (problem) throw corrupt(what, `${field}.${k}`, problem);
  }
}

const emptyObject = (v: unknown): string | undefined => (isObj(v) ? undefined : `must be an object ({}), not ${kind(v)}`);
const aString = (v: unknown): string | undefined => (typeof v === 'string' ? undefined : `must be a string, not ${kind(v)}`);

function checkPlatform(v: unknown, what: string, field: string): Platform {
  if (!isObj(v)) throw corrupt(what, field, `must be a map, not ${kind(v)}`);
  str(v, 'architecture', what, `${field}.architecture`, true);
  str(v, 'os', what, `${field}.os`, true);
  str(v, 'variant', what, `${field}.variant`);
  str(v, 'os.version', what, `${field}.os.version`);
  strList(v, 'os.features', what, `${field}.os.features`);
  return v as unknown as Platform;
}

/** A descriptor: mediaType string, valid digest, size a non-negative safe integer. */
export function checkDescriptor(v: unknown, what: string, field: string): Descriptor {
  if (!isObj(v)) throw corrupt(what, field, `must be a descriptor (map), not ${kind(v)}`);
  if (typeof v.mediaType !== 'string') throw corrupt(what, `${field}.mediaType`, `must be a string, not ${kind(v.mediaType)}`);
  checkDigest(v.digest, what, `${field}.digest`);
  if (typeof v.size !== 'number' || !Number.isSafeInteger(v.size) || v.size < 0) {
    throw corrupt(what, `${field}.size`, `must be a non-negative integer, not ${typeof v.size === 'number' ? v.size : kind(v.size)}`);
  }
  strList(v, 'urls', what, `${field}.urls`);
  map(v, 'annotations', what, `${field}.annotations`, aString);
  if (v.platform !== undefined && v.platform !== null) checkPlatform(v.platform, what, `${field}.platform`);
  else delete v.platform;
  return v as unknown as Descriptor;
}

/** An image manifest (OCI or Docker schema 2). */
export function validateManifest(doc: unknown, what: string): Manifest {
  if (!isObj(doc)) throw new BerthError('CORRUPT', `${what} is not a JSON object`);
  if (doc.schemaVersion !== 2) throw corrupt(what, 'schemaVersion', `must be 2, not ${JSON.stringify(doc.schemaVersion)}`);
  str(doc, 'mediaType', what, 'mediaType');
  checkDescriptor(doc.config, what, 'config');
  if (!Array.isArray(doc.layers)) throw corrupt(what, 'layers', `must be a list, not ${kind(doc.layers)}`);
  if (doc.layers.length > MAX_LAYERS) throw corrupt(what, 'layers', `has ${doc.layers.length} entries (limit ${MAX_LAYERS})`);
  doc.layers.forEach((l, i) => checkDescriptor(l, what, `layers[${i}]`));
  map(doc, 'annotations', what, 'annotations', aString);
  return doc as unknown as Manifest;
}

/** An image index (OCI or Docker manifest list). */
export function validateIndex(doc: unknown, what: string): Index {
  if (!isObj(doc)) throw new BerthError('CORRUPT', `${what} is not a JSON object`);
  if (doc.schemaVersion !== 2) throw corrupt(what, 'schemaVersion', `must be 2, not ${JSON.stringify(doc.schemaVersion)}`);
  str(doc, 'mediaType', what, 'mediaType');
  if (!Array.isArray(doc.manifests)) throw corrupt(what, 'manifests', `must be a list, not ${kind(doc.manifests)}`);
  doc.manifests.forEach((m, i) => checkDescriptor(m, what, `manifests[${i}]`));
  map(doc, 'annotations', what, 'annotations', aString);
  return doc as unknown as Index;
}

/** An image config: the fields berth (or the spec) gives a meaning, with their spec types. */
export function validateConfig(doc: unknown, what: string): ImageConfig {
  if (!isObj(doc)) throw new BerthError('CORRUPT', `${what} is not a JSON object`);
  for (const k of ['created', 'author', 'architecture', 'os', 'variant', 'os.version']) str(doc, k, what, k);
  strList(doc, 'os.features', what, 'os.features');
  const c = doc.config;
  if (c === undefined || c === null) delete doc.config;
  else if (!isObj(c)) throw corrupt(what, 'config', `must be a map, not ${kind(c)}`);
  else {
    for (const k of ['User', 'WorkingDir', 'StopSignal']) str(c, k, what, `config.${k}`);
    for (const k of ['Env', 'Entrypoint', 'Cmd', 'Shell', 'OnBuild']) strList(c, k, what, `config.${k}`);
    map(c, 'ExposedPorts', what, 'config.ExposedPorts', emptyObject);
    map(c, 'Volumes', what, 'config.Volumes', emptyObject);
    map(c, 'Labels', what, 'config.Labels', aString);
    if (c.ArgsEscaped !== undefined && c.ArgsEscaped !== null && typeof c.ArgsEscaped !== 'boolean') {
      throw corrupt(what, 'config.ArgsEscaped', `must be a boolean, not ${kind(c.ArgsEscaped)}`);
    }
    if (c.Healthcheck !== undefined && c.Healthcheck !== null && !isObj(c.Healthcheck)) {
      throw corrupt(what, 'config.Healthcheck', `must be a map, not ${kind(c.Healthcheck)}`);
    }
  }
  const r = doc.rootfs;
  if (!isObj(r)) throw corrupt(what, 'rootfs', r === undefined ? 'is missing' : `must be a map, not ${kind(r)}`);
  if (r.type !== 'layers') throw corrupt(what, 'rootfs.type', `must be "layers", not ${JSON.stringify(r.type)}`);
  if (!Array.isArray(r.diff_ids)) throw corrupt(what, 'rootfs.diff_ids', `must be a list, not ${kind(r.diff_ids)}`);
  if (r.diff_ids.length > MAX_LAYERS) throw corrupt(what, 'rootfs.diff_ids', `has ${r.diff_ids.length} entries (limit ${MAX_LAYERS})`);
  r.diff_ids.forEach((d, i) => checkDigest(d, what, `rootfs.diff_ids[${i}]`));
  const h = doc.history;
  if (h === undefined || h === null) delete doc.history;
  else if (!Array.isArray(h)) throw corrupt(what, 'history', `must be a list, not ${kind(h)}`);
  else {
    h.forEach((e, i) => {
      if (!isObj(e)) throw corrupt(what, `history[${i}]`, `must be a map, not ${kind(e)}`);
      for (const k of ['created', 'created_by', 'author', 'comment']) str(e, k, what, `history[${i}].${k}`);
      if (e.empty_layer !== undefined && e.empty_layer !== null && typeof e.empty_layer !== 'boolean') {
        throw corrupt(what, `history[${i}].empty_layer`, `must be a boolean, not ${kind(e.empty_layer)}`);
      }
    });
  }
  return doc as unknown as ImageConfig;
}

/** Bytes → validated manifest (size-capped). */
export function parseManifest(bytes: Buffer, what: string): Manifest {
  return validateManifest(parseJSONDocument(bytes, what, MAX_MANIFEST_BYTES), what);
}

/** Bytes → validated index (size-capped). */
export function parseIndex(bytes: Buffer, what: string): Index {
  return validateIndex(parseJSONDocument(bytes, what, MAX_MANIFEST_BYTES), what);
}

/** Bytes → validated config (size-capped). */
export function parseConfig(bytes: Buffer, what: string): ImageConfig {
  return validateConfig(parseJSONDocument(bytes, what, MAX_CONFIG_BYTES), what);
}
