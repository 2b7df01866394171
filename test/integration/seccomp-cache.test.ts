/**
 * @module test/integration/seccomp-cache
 * nspawn's seccomp filter compiled once (native/seccomp.c, runtime/nspawn/seccomp.ts),
 * against the real systemd-nspawn and kernel of this VM, on a busybox-static root:
 * - the probe's cache names nspawn's binary and libraries and the kernel;
 * - a start through nspawn-start with the cache gives PID 1 byte-identical programs and
 *   the same CapBnd/CapEff/NoNewPrivs/Seccomp as nspawn's own start;
 * - nspawn-start takes nspawn's own filter for settings berth does not write, for a stale
 *   cache (and removes it) and without one;
 * - seccomp-init never runs the payload unconfined: an empty filter file without nspawn's
 *   filter, a garbage one, or other capabilities are refused before the payload runs.
 */
import { strict as assert } from 'node:assert';
import { copyFileSync, mkdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { run } from '../../src/base/exec.ts';

const HELPER = new URL('../../dist/libexec/berth-helper', import.meta.url).pathname;
const NSPAWN = '/usr/bin/systemd-nspawn';
const FIELDS = /^(CapBnd|CapEff|CapPrm|NoNewPrivs|Seccomp|Seccomp_filters):.*$/gm;
const isRoot = process.getuid?.() === 0;

describe('nspawn seccomp filter cache on this VM', { skip: !isRoot && 'needs root', timeout: 300_000 }, () => {
  const name = `berth-sc-${process.pid}`;
  const dir = `/run/berth-sctest-${process.pid}/seccomp`;
  const cache = `${dir}/nspawn.cache`;
  const filter = `${dir}/${name}.filter`;
  const nspawnFile = `/etc/systemd/nspawn/${name}.nspawn`;
  let root = '';

  before(async () => {
    root = await mkdtemp('/var/tmp/berth-sc-root-');
    mkdirSync(join(root, 'usr'));
    mkdirSync(join(root, 'bin'));
    copyFileSync('/bin/busybox', join(root, 'bin/busybox'));
    mkdirSync('/etc/systemd/nspawn', { recursive: true });
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
    await rm(dir.replace(/\/seccomp$/, ''), { recursive: true, force: true });
    await rm(nspawnFile, { force: true });
  });

  /** berth's form of the settings, plus extra [Exec] lines. */
  const settings = (payload: string, extra = ''): string => [
    '[Exec]', 'Boot=no', 'ProcessTwo=no',
    `Parameters='/run/host/berth/seccomp-init' '/bin/busybox' 'sh' '-c' '${payload}'`, 'KillSignal=SIGTERM', extra,
    '[Files]', `BindReadOnly=${HELPER}:/run/host/berth/seccomp-init`, `BindReadOnly=${filter}:/run/host/berth/seccomp.filter`, '',
  ].join('\n');

  /** nspawn as `berth run` starts it without systemd, through nspawn-start. */
  const viaStart = (env: Record<string, string> = {}) => run([
    HELPER, 'private-tmpfs', '/run/systemd/nspawn', '--', HELPER, 'nspawn-start', filter, '--',
    NSPAWN, '--quiet', `--machine=${name}`, `--directory=${root}`, '--keep-unit', '--register=no', '--console=pipe',
  ], { reject: false, timeoutMs: 60_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', BERTH_SECCOMP_DEBUG: '1', ...env } });

  /** nspawn on its own (no wrapper), with the given payload argv. */
  const direct = (argv: string[], env: Record<string, string> = {}, extra: string[] = []) => run([
    HELPER, 'private-tmpfs', '/run/systemd/nspawn', '--', NSPAWN, '--quiet', `--machine=${name}-d`, `--directory=${root}`,
    '--keep-unit', '--register=no', '--console=pipe', '--settings=no', ...extra, '--', ...argv,
  ], { reject: false, timeoutMs: 60_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env } });

  /** Runs cmd in the background, dumps the programs of the container's PID 1 while it sleeps. */
  async function dumpWhile(start: () => Promise<unknown>, marker: string): Promise<{ programs: string; out: unknown }> {
    const done = start();
    let pid = 0;
    for (let i = 0; i < 100 && pid === 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      const p = await run(['pgrep', '-f', marker], { reject: false });
      for (const cand of p.stdout.split('\n').filter(Boolean)) {
        const st = await readFile(`/proc/${cand}/status`, 'utf8').catch(() => '');
        // the payload itself, not nspawn's inner child (whose argv also names the marker)
        const argv = await readFile(`/proc/${cand}/cmdline`, 'utf8').catch(() => '');
        if (/^NSpid:.*\s1$/m.test(st) && argv.startsWith('/bin/busybox\0sleep\0')) pid = Number(cand);
      }
    }
    assert.ok(pid > 0, `the container's PID 1 (${marker}) was not found`);
    const raw = execFileSync(HELPER, ['seccomp-dump', String(pid)], { timeout: 10_000 });
    if (process.env.SC_DEBUG) await writeFile(`/tmp/sc-${marker.replace(/\W/g, '')}.bin`, raw);
    const programs = createHash('sha256').update(raw).digest('hex');
    return { programs, out: await done };
  }

  test('seccomp-probe writes a cache naming nspawn, its libraries and the kernel', async () => {
    await run([HELPER, 'seccomp-probe', cache, NSPAWN], { timeoutMs: 60_000 });
    const text = (await readFile(cache)).toString('latin1');
    const header = text.slice(0, text.indexOf('\ndata\n'));
    assert.match(header, /^berth-seccomp-cache 1\n/);
    assert.match(header, new RegExp(`\\nkernel ${(await run(['uname', '-r'])).stdout.trim().replace(/\./g, '\\.')} x86_64 `));
    const files = header.split('\n').filter((l) => l.startsWith('file ')).map((l) => l.split(' ').slice(6).join(' '));
    assert.equal(files[0], NSPAWN, 'the binary comes first');
    assert.ok(files.some((f) => /libseccomp\.so/.test(f)), 'libseccomp is part of the identity');
    assert.ok(files.some((f) => /libsystemd-shared/.test(f)), 'libsystemd-shared is part of the identity');
    assert.match(header, /\nfilters [1-9]\d*$/);
    // another systemd: what its filter depends on has not been read, so no cache
    const fake = join(root, 'fake-nspawn');
    await writeFile(fake, '#!/bin/sh\necho "systemd 254 (254.5-1)"\n', { mode: 0o755 });
    const other = await run([HELPER, 'seccomp-probe', `${dir}/other.cache`, fake], { reject: false, timeoutMs: 10_000 });
    assert.equal(other.exitCode, 5);
    assert.match(other.stderr, /seccomp-probe \S+fake-nspawn: ENOTSUP \(systemd 254: .*252 only\)/);
  });

  test('a cached start gives PID 1 the programs nspawn gives it, byte for byte, and the same caps', async () => {
    await writeFile(nspawnFile, settings('grep -E "^(CapBnd|CapEff|CapPrm|NoNewPrivs|Seccomp|Seccomp_filters):" /proc/self/status; exec /bin/busybox sleep 1.211'));
    const fast = await dumpWhile(() => viaStart(), 'sleep 1.211');
    const fr = fast.out as { exitCode: number; stdout: string; stderr: string };
    assert.equal(fr.exitCode, 0, fr.stderr);
    assert.match(fr.stderr, /nspawn-start: cached filter/);
    assert.ok((await readFile(filter)).length > 0, 'the machine\'s filter file is the cache');
    const slow = await dumpWhile(() => direct(['/bin/busybox', 'sh', '-c', 'grep -E "^(CapBnd|CapEff|CapPrm|NoNewPrivs|Seccomp|Seccomp_filters):" /proc/self/status; exec /bin/busybox sleep 1.212']), 'sleep 1.212');
    const sr = slow.out as { exitCode: number; stdout: string; stderr: string };
    assert.equal(sr.exitCode, 0, sr.stderr);
    assert.equal(fast.programs, slow.programs, 'byte-identical seccomp programs');
    assert.deepEqual(fr.stdout.match(FIELDS), sr.stdout.match(FIELDS));
    assert.match(fr.stdout, /^Seccomp:\s+2$/m);
  });

  test('nspawn-start uses nspawn\'s own filter for settings berth does not write', async () => {
    for (const extra of ['SystemCallFilter=~@clock', 'DropCapability=CAP_SYS_PTRACE', 'Capability=CAP_SYS_TIME', 'SuppressSync=yes', 'User=nobody']) {
      await writeFile(nspawnFile, settings('grep -E "^Seccomp:" /proc/self/status', extra));
      const r = await viaStart();
      assert.match(r.stderr, /nspawn-start: an \[Exec\] setting that may change the filter/, extra);
      if (extra !== 'User=nobody') {
        assert.equal(r.exitCode, 0, `${extra}: ${r.stderr}`);
        assert.match(r.stdout, /^Seccomp:\s+2$/m, extra);
      }
      assert.equal((await readFile(filter)).length, 0, `${extra}: empty filter file, so seccomp-init loads nothing`);
    }
    // Parameters= that does not start with seccomp-init: the cache would never be loaded
    await writeFile(nspawnFile, settings('true').replace("Parameters='/run/host/berth/seccomp-init' ", 'Parameters='));
    const r = await viaStart();
    assert.match(r.stderr, /nspawn-start: Parameters= does not start with berth's seccomp-init/);
    // a mount that could hide or replace seccomp-init or its filter (nspawn mounts parents first)
    for (const m of ['BindReadOnly=/bin:/run/host/berth', 'Bind=/tmp:/run', 'TemporaryFileSystem=/run/host:mode=0755', 'Bind=/bin://run//host/', 'Bind=/bin:/run/host/../host',
      `BindReadOnly=/bin/busybox:/run/host/berth/seccomp-init`, 'Inaccessible=/run/host/berth/seccomp.filter']) {
      await writeFile(nspawnFile, settings('true') + `${m}\n`);
      assert.match((await viaStart()).stderr, /nspawn-start: another mount over berth's seccomp-init or its filter/, m);
    }
    // mounts elsewhere below /run (a volume at /run/secrets) keep the cache
    await writeFile(nspawnFile, settings('true') + 'BindReadOnly=/bin:/run/secrets\nTemporaryFileSystem=/run/host/other\n');
    assert.match((await viaStart()).stderr, /nspawn-start: cached filter/);
  });

  test('nspawn-start: --boot needs --settings=override (else the file\'s Boot=no loses); options berth does not pass', async () => {
    await writeFile(nspawnFile, settings('true'));
    const start = (opts: string[]) => run([HELPER, 'private-tmpfs', '/run/systemd/nspawn', '--', HELPER, 'nspawn-start', filter, '--',
      NSPAWN, '--quiet', `--machine=${name}`, `--directory=${root}`, '--keep-unit', '--register=no', '--console=pipe', ...opts],
    { reject: false, timeoutMs: 60_000, env: { PATH: '/usr/bin:/bin', BERTH_SECCOMP_DEBUG: '1' } });
    assert.match((await start(['--boot'])).stderr, /nspawn-start: --boot without --settings=override/);
    // started with a smaller bounding set (a unit's CapabilityBoundingSet=): nspawn's own filter, the cache kept
    const bnd = await run([HELPER, 'private-tmpfs', '/run/systemd/nspawn', '--', 'setpriv', '--bounding-set=-sys_ptrace', HELPER, 'nspawn-start', filter, '--', NSPAWN, '--quiet', `--machine=${name}`,
      `--directory=${root}`, '--keep-unit', '--register=no', '--console=pipe'], { reject: false, timeoutMs: 60_000, env: { PATH: '/usr/bin:/bin', BERTH_SECCOMP_DEBUG: '1' } });
    assert.match(bnd.stderr, /nspawn-start: a capability of the cache's is not in this process's bounding set/);
    assert.ok((await readFile(cache)).length > 0, 'the cache stays');
    assert.match((await start(['--boot', '--settings=override'])).stderr, /nspawn-start: cached filter/);
    for (const o of ['--system-call-filter=~@clock', '--capability=CAP_SYS_TIME', '--settings=no', '/bin/busybox']) {
      assert.match((await start([o])).stderr, /nspawn-start: an nspawn option berth does not pass/, o);
      assert.equal((await readFile(filter)).length, 0, o);
    }
  });

  test('a stale cache is not used and is removed; without a cache nspawn filters itself', async () => {
    await writeFile(nspawnFile, settings('grep -E "^Seccomp:" /proc/self/status'));
    const good = await readFile(cache);
    const text = good.toString('latin1');
    // the size of nspawn's binary, as if it had been upgraded
    const stale = Buffer.from(text.replace(/^(file \d+ \d+ )(\d+)/m, (_m, a: string, n: string) => `${a}${Number(n) + 1}`), 'latin1');
    await writeFile(cache, stale);
    const r = await viaStart();
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stderr, /nspawn-start: stale cache/);
    assert.match(r.stdout, /^Seccomp:\s+2$/m);
    await assert.rejects(readFile(cache), /ENOENT/, 'the stale cache is removed');
    const none = await viaStart();
    assert.match(none.stderr, /nspawn-start: no cache/);
    assert.match(none.stdout, /^Seccomp:\s+2$/m);
    await writeFile(cache, good, { mode: 0o644 });
  });

  test('seccomp-init refuses to run the payload unconfined', async () => {
    const binds = [`--bind-ro=${HELPER}:/run/host/berth/seccomp-init`, `--bind-ro=${filter}:/run/host/berth/seccomp.filter`];
    const payload = ['/run/host/berth/seccomp-init', '/bin/busybox', 'echo', 'RAN'];
    // nspawn did not filter (SYSTEMD_SECCOMP=0) and the filter file is empty
    await writeFile(filter, '');
    let r = await direct(payload, { SYSTEMD_SECCOMP: '0' }, binds);
    assert.notEqual(r.exitCode, 0);
    assert.doesNotMatch(r.stdout, /RAN/);
    assert.match(r.stderr, /seccomp-init .*refusing to run unconfined/);
    // garbage
    await writeFile(filter, 'berth-seccomp-cache 1\nkernel x\ndata\n\x01\x02');
    r = await direct(payload, { SYSTEMD_SECCOMP: '0' }, binds);
    assert.notEqual(r.exitCode, 0);
    assert.doesNotMatch(r.stdout, /RAN/);
    assert.match(r.stderr, /seccomp-init \/run\/host\/berth\/seccomp\.filter: EINVAL/);
    // the cache's capabilities differ from the payload's (CAP_SYS_PTRACE dropped by hand)
    await writeFile(filter, await readFile(cache));
    r = await direct(payload, { SYSTEMD_SECCOMP: '0' }, [...binds, '--drop-capability=CAP_SYS_PTRACE']);
    assert.notEqual(r.exitCode, 0);
    assert.doesNotMatch(r.stdout, /RAN/);
    assert.match(r.stderr, /capabilities differ from the cached filter's/);
    // and with the right capabilities the same file is loaded
    r = await direct([...payload.slice(0, 2), 'sh', '-c', 'grep -E "^Seccomp:" /proc/self/status'], { SYSTEMD_SECCOMP: '0' }, binds);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /^Seccomp:\s+2$/m);
  });
});
