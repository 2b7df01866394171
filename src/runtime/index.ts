/**
 * @module runtime
 * The Runtime seam and its registry. Backends live below it (runtime/bwrap; the nspawn
 * Runtime is machine/runtime.ts, built on runtime/nspawn) and are registered by name by the
 * manager (manager/backends.ts), which loads only the one a caller needs.
 */
export * from './runtime.ts';
