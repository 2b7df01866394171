/**
 * @module content
 * Public surface of the content store (the file other modules import from): the roles in
 * types.ts, the local OCI-layout store, and its maintenance (fsck, reachability, gc).
 */
export type { BlobInfo, ContentStore, IngestOptions, IngestWriter, Ingester, Manager, Provider, RefEntry, RefStore } from './types.ts';
export { openStore, LocalStore } from './local-store.ts';
export { fsckBlobs, verifyAllBlobs } from './fsck.ts';
export type { FsckOptions } from './fsck.ts';
export { reachableFrom } from './reachable.ts';
export type { Finding, FindingKind, Reachability } from './reachable.ts';
export { gcBlobs } from './gc.ts';
export type { GcOptions, GcResult } from './gc.ts';
export { Leases } from './lease.ts';
export type { Lease, LeaseRecord, HeldItems } from './lease.ts';
