/**
 * The dependency rule, checked: modules are ranked and a module imports only from modules
 * of a lower rank (VS Code's code-layering, as a test). A new module must be given a rank.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, dirname, resolve } from 'node:path';

const RANK: Record<string, number> = {
  base: 0,
  oci: 1, reference: 1, unit: 1, native: 1,
  content: 2, registry: 2, container: 2, snapshot: 2, network: 2,
  dbus: 2,
  image: 3, runtime: 3,
  machine: 4,
  manager: 5,
  cli: 6,
  'main.ts': 7,
};

const SRC = dirname(new URL(import.meta.url).pathname);

function* files(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* files(p);
    else if (p.endsWith('.ts') && !p.endsWith('.test.ts')) yield p;
  }
}

const moduleOf = (file: string): string => relative(SRC, file).split('/')[0]!;

test('every module has a rank and imports only from lower ranks', () => {
  const bad: string[] = [];
  for (const file of files(SRC)) {
    const self = moduleOf(file);
    if (RANK[self] === undefined) {
      bad.push(`${relative(SRC, file)}: module "${self}" has no rank in layering.test.ts`);
      continue;
    }
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from\s+|import\()\s*'(\.[^']+)'/g)) {
      const target = moduleOf(resolve(dirname(file), m[1]!));
      if (target === self || target.startsWith('..')) continue;
      if ((RANK[target] ?? Infinity) >= RANK[self]!) bad.push(`${relative(SRC, file)} (${self}) imports ${m[1]} (${target})`);
    }
  }
  assert.deepEqual(bad, []);
});
