/**
 * @module base/builtins
 * Node built-ins that only some commands need, loaded on first use. A static import of them
 * costs every command their load (node:zlib ~3.5 ms here, node:readline ~1-1.5 ms), and a
 * dynamic import() is not possible in the bundle bin/launch.cjs compiles with vm.Script
 * (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING); require through createRequire is.
 */
import { createRequire } from 'node:module';

const load = createRequire(import.meta.url);

export function zlib(): typeof import('node:zlib') {
  return load('node:zlib') as typeof import('node:zlib');
}

export function readline(): typeof import('node:readline') {
  return load('node:readline') as typeof import('node:readline');
}

export function https(): typeof import('node:https') {
  return load('node:https') as typeof import('node:https');
}

export function tls(): typeof import('node:tls') {
  return load('node:tls') as typeof import('node:tls');
}
