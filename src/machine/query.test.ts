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

test('ps and the UID pick never hang on a .nspawn FIFO: FIFOs and directories are no machines, a huge file is one without metadata', async () => {
  const { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } = await import('node:fs');
  const { spawnSync } = await import('node:child_process');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { readSettingsFileSync, takenRanges } = await import('../runtime/nspawn/index.ts');
  const { listMachineSummaries } = await import('./query.ts');
  const root = mkdtempSync(join(tmpdir(), 'berth-query-'));
  const dir = join(root, 'etc/systemd/nspawn');
  mkdirSync(dir, { recursive: true });
  const before = process.env.BERTH_SYSTEMD_ROOT;
  try {
    writeFileSync(join(dir, 'good.nspawn'), "[Exec]\nParameters='sleep' '1'\nPrivateUsers=655360:65536\n[X-Berth]\nImage='docker.io/library/busybox:latest'\n");
    assert.equal(spawnSync('mkfifo', [join(dir, 'fifo.nspawn')]).status, 0);
    writeFileSync(join(dir, 'big.nspawn'), `[Exec]\nPrivateUsers=720896:65536\n#${'x'.repeat(2 << 20)}\n`);
    mkdirSync(join(dir, 'adir.nspawn'));
    writeFileSync(join(root, 'target'), '[Exec]\nPrivateUsers=786432:65536\n');
    symlinkSync(join(root, 'target'), join(dir, 'link.nspawn'));
    assert.equal(readSettingsFileSync(join(dir, 'fifo.nspawn')), undefined);
    assert.equal(readSettingsFileSync(join(dir, 'big.nspawn')), undefined);
    assert.equal(readSettingsFileSync(join(dir, 'adir.nspawn')), undefined);
    assert.match(readSettingsFileSync(join(dir, 'link.nspawn')) ?? '', /786432/);
    const bases = (await takenRanges(dir)).map((r) => r.base).filter((b) => b >= 655360 && b <= 786432).sort((a, b) => a - b);
    assert.deepEqual(bases, [655360, 786432], 'the FIFO and the huge file give no range; the link is followed');
    process.env.BERTH_SYSTEMD_ROOT = root;
    const rows = new Map((await listMachineSummaries()).map((r) => [r.name, r]));
    assert.equal(rows.get('good')?.image, 'docker.io/library/busybox:latest');
    assert.deepEqual(rows.get('good')?.command, ['sleep', '1']);
    assert.ok(rows.has('big'), 'a huge settings file is a machine');
    assert.equal(rows.get('big')?.image, undefined);
    assert.ok(!rows.has('fifo') && !rows.has('adir'), 'a FIFO or directory is not');
  } finally {
    if (before === undefined) delete process.env.BERTH_SYSTEMD_ROOT;
    else process.env.BERTH_SYSTEMD_ROOT = before;
    rmSync(root, { recursive: true, force: true });
  }
});
