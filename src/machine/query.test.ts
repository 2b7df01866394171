import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseUnit } from '../unit/index.ts';
import { commandOf, summarySettings } from './query.ts';

const KEYS: [string, string][] = [['Exec', 'Parameters'], ['Exec', 'Boot'], ['X-Berth', 'Image']];

function full(text: string): { get: (s: string, k: string) => string | undefined; hasSection: (s: string) => boolean } | undefined {
  try {
    return parseUnit(text);
  } catch {
    return undefined;
  }
}

test("ps's one-pass reader of .nspawn files reads what parseUnit reads, hand edits and broken files included", () => {
  const texts = [
    "# c\n[Exec]\nBoot=no\nParameters='/run/host/berth/init' -- 'sleep' '1'\n\n[X-Berth]\nImage='docker.io/library/busybox:latest'\n",
    '[Exec]\nParameters=a\nParameters=b\n; comment\n[X-Berth]\n',
    '[Exec]\r\nBoot=yes\r\n',
    '  [Exec]  \n  Parameters = spaced value  \n',
    '[Exec]\nParameters=first \\\n  second\n[X-Berth]\nImage=x\n',
    '[Exec]\nParameters=a\n#  Parameters=commented\n[Other]\nParameters=not exec\n',
    'Parameters=outside a section\n[Exec]\n',
    '[Exec]\nno equals sign here\n',
    '[Exec]\n=value without key\n',
    '[Exec]\nParameters=a\0b\n',
    '',
    '[X-Berth]\nImage=\n',
    '[Exec]\nParameters=a=b=c\n[Exec]\nBoot=no\n',
    '[[bad]]\nImage=x\n',
  ];
  for (const t of texts) {
    const a = summarySettings(t);
    const b = full(t);
    assert.equal(a === undefined, b === undefined, `readable? ${JSON.stringify(t)}`);
    if (!a || !b) continue;
    for (const [s, k] of KEYS) assert.equal(a.get(s, k), b.get(s, k), `${s}.${k} of ${JSON.stringify(t)}`);
    assert.equal(a.hasSection('X-Berth'), b.hasSection('X-Berth'));
    assert.deepEqual(commandOf(a), commandOf(b as never));
  }
});
