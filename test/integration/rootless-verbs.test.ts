/**
 * @module test/integration/rootless-verbs
 * The bwrap backend's verbs for the manager, and the rootless pull unpacker, with the real
 * parts in a booted test host as the unprivileged `tuser` (through rootless-driver.ts):
 * - runAttached: output and exit status, SIGINT forwarded to the container (128+N when it
 *   dies of it), a terminal (-t) with job control, and nothing left behind (no pasta, no unit);
 * - enable/disable: default.target.wants of the user's manager, the linger warning;
 * - ports and summaries from the drop-in, state after `systemctl --user daemon-reexec`;
 * - start does no per-file work: a 20,000-file image starts with an empty upper dir and
 *   its lower snapshot untouched (the timing is in `bench/run.sh rootless`);
 * - the rootless LayerUnpacker against the hostile-layer corpus (layer cases): each is
 *   refused with HOSTILE_LAYER or unpacked harmlessly, and the canary the attacks aim at,
 *   a directory the user can write, is unchanged; no snapshot or work area is left.
 */
import { strict as assert } from 'node:assert';
import { after, describe, test } from 'node:test';
import { chmodSync, copyFileSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot, useTestHost } from '../testhost/index.ts';
import { makeTarLayer, type TarEntry } from '../fixtures/tar-layer.ts';
import { hostileCases } from '../fixtures/hostile-images.ts';
import { chainIds } from '../../src/oci/chain-id.ts';
import type { Digest } from '../../src/base/digest.ts';

const NAME = `rlverbs-${process.pid}`;
const HEX = 'c'.repeat(64);
const BIG = 'e'.repeat(64);
const STORE = '/home/tuser/.local/share/berth';
const LOWER = `${STORE}/snapshots/dir/${HEX}/fs`;
const CANARY = '/home/tuser/canary';

interface DriverResult { ok: boolean; value?: unknown; code?: string; reason?: string; message?: string }

function spec(name: string, args: string[], network: 'link' | 'private' = 'private', chain = HEX): Record<string, unknown> {
  return {
    name,
    image: { ref: 'localhost/busybox:test', digest: `sha256:${'a'.repeat(64)}`, id: `sha256:${'b'.repeat(64)}`, chainIds: [`sha256:${chain}`] },
    process: { args, env: ['PATH=/bin'], cwd: '/', tty: false, stdin: false },
    mounts: [], readOnlyRoot: false, resources: {}, restart: 'no', boot: false, userns: 'pick', network: { mode: network }, labels: {},
  };
}

describe('bwrap verbs for the manager and the rootless unpacker', { timeout: 600_000 }, () => {
  const layers = mkdtempSync(join(tmpdir(), 'berth-rlverbs-'));
  chmodSync(layers, 0o755);
  after(() => rmSync(layers, { recursive: true, force: true }));
  const host = useTestHost({ name: NAME, binds: [{ host: realpathSync(join(repoRoot, 'node_modules')), ro: true }, { host: layers, ro: true }] });
  const env = { HOME: '/home/tuser', XDG_RUNTIME_DIR: '/run/user/1000', DBUS_SESSION_BUS_ADDRESS: 'unix:path=/run/user/1000/bus' };
  const asUser = (argv: string[], timeoutMs = 60_000) => host().run(argv, { user: 'tuser', reject: false, timeoutMs, env });
  const DRIVER = ['node', '--import', 'tsx', 'test/integration/rootless-driver.ts'];
  const q = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;

  async function drv(verb: string, name = '', json?: unknown): Promise<DriverResult & { stdout: string }> {
    const r = await asUser([...DRIVER, verb, name, ...(json === undefined ? [] : [typeof json === 'string' ? json : JSON.stringify(json)])]);
    const line = r.stdout.trim().split('\n').pop() ?? '';
    try {
      return { ...(JSON.parse(line) as DriverResult), stdout: r.stdout };
    } catch {
      throw new Error(`driver ${verb} ${name}: exit ${r.exitCode}: ${r.stdout} ${r.stderr}`);
    }
  }
  const ok = (r: DriverResult): unknown => {
    assert.ok(r.ok, `${r.code}: ${r.message}`);
    return r.value;
  };
  const leftovers = async () => (await host().exec(['sh', '-c', 'ps -eo user=,comm= | grep -E "^tuser +(pasta|bwrap|unshare)" || true'])).stdout.trim();

  test('setup: tuser with a range and lingering, a busybox dir snapshot, a 20,000-file one', async () => {
    const h = host();
    await h.exec(['sh', '-euc', [
      'touch /etc/subuid /etc/subgid', 'useradd -m tuser', 'loginctl enable-linger tuser', 'chmod 666 /dev/net/tun',
      'ip link add rv0 type veth peer name rv1', 'ip addr add 10.214.0.2/24 dev rv0', 'ip link set rv0 up', 'ip link set rv1 up', 'ip route add default via 10.214.0.1',
    ].join('\n')]);
    for (let i = 0; i < 50 && (await h.exec(['test', '-S', '/run/user/1000/bus'], { reject: false })).exitCode !== 0; i++) await new Promise((r) => setTimeout(r, 100));
    const mk = await asUser(['sh', '-euc', [
      `mkdir -p ${LOWER}/bin ${LOWER}/etc ${LOWER}/tmp ${STORE}/snapshots/dir/${BIG}/fs/data ${CANARY}`, `cp /usr/bin/busybox ${LOWER}/bin/`,
      `for a in sh ls echo sleep cat tty test kill touch wc; do ln -s busybox ${LOWER}/bin/$a; done`, `echo keep > ${CANARY}/keep`,
      `echo 'test -t 0 && echo is-a-tty; touch /ready0' > ${LOWER}/ready.sh`,
      // The big image: busybox plus 20,000 files, in one snapshot.
      `cp -a ${LOWER}/. ${STORE}/snapshots/dir/${BIG}/fs/`,
      `cd ${STORE}/snapshots/dir/${BIG}/fs/data && seq 1 20000 | xargs touch`,
    ].join('\n')], 120_000);
    assert.equal(mk.exitCode, 0, mk.stderr);
  });

  test('attached run: the container\'s output and exit status, a signal gives 128+N, nothing left behind', async () => {
    ok(await drv('create', 'fg', { spec: spec('fg', ['sh', '-c', 'echo "out $$ $0"; echo err >&2; exit 7'], 'link') }));
    const r = await drv('run', 'fg');
    assert.equal(ok(r), 7);
    assert.match(r.stdout, /^out 2 sh$/m); // the payload is PID 2 under bwrap's reaper; $ reached sh unexpanded
    assert.deepEqual((ok(await drv('state', 'fg')) as { status: string; exitCode: number }), { name: 'fg', runtime: 'bwrap', unit: 'berth-sandbox@fg.service', status: 'exited', exitCode: 7 });
    // SIGINT to berth: forwarded to the payload, which traps it.
    ok(await drv('create', 'trap', { spec: spec('trap', ['sh', '-c', 'trap "echo got-int; exit 5" INT; echo ready; while :; do sleep 0.2; done'], 'link') }));
    // Signal once the container has said it is ready (no sleeps: this VM is often loaded).
    const signalWhenReady = (name: string, sig: string) => `o=/home/tuser/${name}.out; ${DRIVER.join(' ')} run ${name} > $o 2>&1 & p=$!; i=0; ` +
      `while ! grep -q '^ready' $o && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; kill -${sig} $p; wait $p; cat $o`;
    const t = await asUser(['sh', '-c', signalWhenReady('trap', 'INT')], 120_000);
    assert.match(t.stdout, /^ready$/m);
    assert.match(t.stdout, /^got-int$/m);
    assert.match(t.stdout, /"ok":true,"value":5/);
    // SIGTERM to berth, payload without a handler: killed by it, 143.
    ok(await drv('create', 'term', { spec: spec('term', ['sh', '-c', 'echo ready; exec sleep 100']) }));
    const k = await asUser(['sh', '-c', signalWhenReady('term', 'TERM')], 120_000);
    assert.match(k.stdout, /"ok":true,"value":143/);
    assert.equal(await leftovers(), '');
    const units = await asUser(['systemctl', '--user', 'list-units', '--all', '--no-legend', 'berth-run-*']);
    assert.equal(units.stdout.trim(), '');
    // A foreground run refuses a container that runs already, and start refuses one in the foreground.
    ok(await drv('create', 'busy', { spec: spec('busy', ['sleep', '100']) }));
    ok(await drv('start', 'busy'));
    assert.equal((await drv('run', 'busy')).code, 'FAILED_PRECONDITION');
    ok(await drv('rm', 'busy', 'force'));
  });

  test('foreground run without a unit: seen running by other processes, stopped or removed by them, gone with a SIGKILLed berth', async () => {
    // --network=none, no terminal, no limits: berth's own child, no transient unit (toAttachedRun mode 'child').
    // The foreground run sits in its caller's cgroup (as podman's does), so it is started in
    // a user service of its own that outlives this command, with KillMode=none: when that
    // berth is SIGKILLed, only --die-with-parent may take the sandbox down, not systemd.
    let runs = 0;
    const bg = (name: string) => {
      const u = `rlverbs-bg-${name}-${++runs}.service`;
      return `o=/home/tuser/${name}.out; rm -f $o; systemd-run --user --quiet --collect -p KillMode=none --unit=${u} --working-directory=${repoRoot} ` +
        `sh -c ${q(`exec ${DRIVER.join(' ')} run ${name} > $0 2>&1`)} $o; i=0; ` +
        `while ! grep -q '^ready' $o 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; systemctl --user show -p MainPID --value ${u}`;
    };
    const waitOut = (name: string) => `o=/home/tuser/${name}.out; i=0; while ! grep -q '"ok"' $o && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; cat $o`;
    ok(await drv('create', 'nounit', { spec: spec('nounit', ['sh', '-c', 'echo ready; exec sleep 100']) }));
    const started = await asUser(['sh', '-c', bg('nounit')], 120_000);
    assert.match(started.stdout, /^\d+$/m);
    const st = ok(await drv('state', 'nounit')) as { status: string; unit: string; pid: number };
    assert.equal(st.status, 'running');
    assert.match(st.unit, /^foreground run, pid \d+ \(no unit\)$/);
    // Its first process is bwrap (with --die-with-parent), in the caller's cgroup, not a unit's.
    assert.match((await host().exec(['cat', `/proc/${st.pid}/cmdline`])).stdout, /bwrap\0--die-with-parent\0/);
    const units = await asUser(['systemctl', '--user', 'list-units', '--all', '--no-legend', 'berth-run-*', 'berth-sandbox@nounit*']);
    assert.equal(units.stdout.trim(), '');
    const row = (ok(await drv('summaries')) as Array<{ name: string; status: string; pid?: number }>).find((s) => s.name === 'nounit');
    assert.deepEqual([row?.status, row?.pid], ['running', st.pid]);
    assert.equal((await drv('start', 'nounit')).code, 'FAILED_PRECONDITION');
    assert.equal((await drv('run', 'nounit')).code, 'FAILED_PRECONDITION');
    assert.equal((await drv('rm', 'nounit')).code, 'FAILED_PRECONDITION');
    // exec works the same way as into a unit's sandbox.
    const ex = await drv('exec', 'nounit', ['sh', '-c', 'echo "in $(hostname)"']);
    assert.match(ex.stdout, /^in nounit$/m);
    // stop from another process: the stop signal reaches the payload, the run ends with 143 and is recorded.
    ok(await drv('stop', 'nounit'));
    assert.match((await asUser(['sh', '-c', waitOut('nounit')], 120_000)).stdout, /"ok":true,"value":143/);
    assert.deepEqual(ok(await drv('state', 'nounit')), { name: 'nounit', runtime: 'bwrap', unit: 'berth-sandbox@nounit.service', status: 'exited', exitCode: 143 });
    // SIGKILL of berth itself: bwrap dies with its parent, and its PID namespace with it; nothing stays.
    const again = await asUser(['sh', '-c', bg('nounit')], 120_000);
    const berthPid = again.stdout.trim().split('\n').pop()!;
    await asUser(['sh', '-c', `kill -KILL ${berthPid}`]);
    for (let i = 0; i < 50 && (await leftovers()) !== ''; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(await leftovers(), '');
    assert.notEqual((ok(await drv('state', 'nounit')) as { status: string }).status, 'running');
    // A payload that daemonises (setsid, a double fork) and exits: without a unit's cgroup to
    // empty, the PID namespace ending with bwrap's init takes its children along.
    // It also leaves what a plain rm as the user cannot remove, a 000 directory with a file and
    // a file of a subordinate ID, plus a deep tree; rm must still remove it all.
    const bb = '/bin/busybox'; // the test image links a few applets only
    const mess = `${bb} mkdir -p /m/locked && touch /m/locked/f && ${bb} chmod 000 /m/locked && touch /m/sub && ${bb} chown 1234:1234 /m/sub && ` +
      `${bb} mkdir -p /m/${Array.from({ length: 15 }, () => 'n'.repeat(200)).join('/')} && touch /m/${Array.from({ length: 15 }, () => 'n'.repeat(200)).join('/')}/deep`;
    ok(await drv('create', 'daemons', { spec: spec('daemons', ['sh', '-c', `${mess} || exit 9; (${bb} setsid sleep 333 >/dev/null 2>&1 &); (sleep 334 >/dev/null 2>&1 &); exit 3`]) }));
    assert.equal(ok(await drv('run', 'daemons')), 3);
    const sleepers = async () => (await host().exec(['sh', '-c', 'ps -eo args= | grep -E "^sleep 33[34]" || true'])).stdout.trim();
    for (let i = 0; i < 20 && (await sleepers()) !== ''; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(await sleepers(), '');
    assert.equal((await host().exec(['stat', '-c', '%u', `${STORE}/sandboxes/daemons/upper/m/sub`])).stdout.trim(), '101233');
    ok(await drv('rm', 'daemons'));
    assert.equal((await host().exec(['test', '-e', `${STORE}/sandboxes/daemons`], { reject: false })).exitCode, 1);
    // rm -f from another process while it runs in the foreground: killed, then removed.
    await asUser(['sh', '-c', bg('nounit')], 120_000);
    ok(await drv('rm', 'nounit', 'force'));
    assert.match((await asUser(['sh', '-c', waitOut('nounit')], 120_000)).stdout, /"ok":true,"value":137/);
    assert.equal((await drv('state', 'nounit')).code, 'NOT_FOUND');
    assert.equal((await host().exec(['test', '-e', `${STORE}/sandboxes/nounit`], { reject: false })).exitCode, 1);
    assert.equal(await leftovers(), '');
  });

  test('attached run with a terminal: job control in the container, Ctrl-C stops the foreground job only', async () => {
    // ash drops what is typed before its first prompt: its $ENV script (run just before
    // that prompt) says when it is there; Ctrl-C only once `sleep 30` runs (it touched /ready1).
    ok(await drv('create', 'tty', { spec: { ...spec('tty', ['sh', '-i']), process: { args: ['sh', '-i'], env: ['PATH=/bin', 'ENV=/ready.sh'], cwd: '/', tty: true, stdin: true } } }));
    const marker = (f: string) => `i=0; while [ ! -e ${STORE}/sandboxes/tty/upper/${f} ] && [ $i -lt 900 ]; do sleep 0.1; i=$((i+1)); done`;
    const keys = `${marker('ready0')}; sleep 1; printf 'touch /ready1; sleep 30\\r'; ${marker('ready1')}; ` +
      "sleep 0.5; printf '\\003'; sleep 1.5; printf 'echo after-ctrl-c\\r'; sleep 1; printf 'exit 4\\r'; sleep 1";
    const r = await asUser(['sh', '-c', `(${keys}) | script -qec ${q(`${DRIVER.join(' ')} run tty '{"tty":true,"stdin":true}'`)} /dev/null`], 120_000);
    assert.match(r.stdout, /^is-a-tty\r?$/m);
    assert.match(r.stdout, /^after-ctrl-c\r?$/m);
    assert.match(r.stdout, /"ok":true,"value":4/);
    // Without a terminal, -t is refused before anything runs.
    assert.equal((await drv('run', 'tty', { tty: true })).code, 'INVALID_ARGUMENT');
  });

  test('enable/disable, linger warning, ports and summaries from the drop-in; the container survives daemon-reexec', async () => {
    const h = host();
    ok(await drv('create', 'web', { spec: spec('web', ['sleep', '1000'], 'link'), publish: [{ hostPort: 18090, containerPort: 80, protocol: 'tcp' }, { hostIp: '127.0.0.1', hostPort: 18091, containerPort: 53, protocol: 'udp' }] }));
    ok(await drv('start', 'web'));
    assert.deepEqual(ok(await drv('enable', 'web')), { warnings: [] });
    assert.equal((await h.exec(['readlink', '/home/tuser/.config/systemd/user/default.target.wants/berth-sandbox@web.service'])).stdout.trim(), '/home/tuser/.config/systemd/user/berth-sandbox@.service');
    await h.exec(['mv', '/var/lib/systemd/linger/tuser', '/var/lib/systemd/linger-tuser.off']);
    try {
      const w = ok(await drv('enable', 'web')) as { warnings: string[] };
      assert.equal(w.warnings.length, 1);
      assert.match(w.warnings[0]!, /lingering is off for tuser: web starts when tuser logs in, not at boot.*loginctl enable-linger tuser/);
    } finally {
      await h.exec(['mv', '/var/lib/systemd/linger-tuser.off', '/var/lib/systemd/linger/tuser']);
    }
    assert.deepEqual(ok(await drv('ports', 'web')), [{ hostPort: 18090, containerPort: 80, protocol: 'tcp' }, { hostIp: '127.0.0.1', hostPort: 18091, containerPort: 53, protocol: 'udp' }]);
    assert.deepEqual(ok(await drv('ports', 'fg')), []);
    assert.equal((await drv('ports', 'nosuch')).code, 'NOT_FOUND');
    const sum = ok(await drv('summaries')) as Array<{ name: string; status: string; command: string[]; image: string; enabled?: string; activeState: string; since?: string; exitCode?: number }>;
    const web = sum.find((s) => s.name === 'web')!;
    assert.equal(web.status, 'running');
    assert.equal(web.activeState, 'active');
    assert.equal(web.enabled, 'enabled');
    assert.deepEqual(web.command, ['sleep', '1000']);
    assert.equal(web.image, 'localhost/busybox:test');
    assert.ok(web.since && Math.abs(Date.parse(web.since) - Date.now()) < 600_000, web.since);
    const fg = sum.find((s) => s.name === 'fg')!;
    assert.deepEqual([fg.status, fg.exitCode], ['exited', 7]);
    // The user manager re-executes itself: the unit and its processes are still there.
    const pid = (ok(await drv('state', 'web')) as { pid: number }).pid;
    assert.equal((await asUser(['systemctl', '--user', 'daemon-reexec'])).exitCode, 0);
    let st = { status: '', pid: 0 };
    for (let i = 0; i < 50 && st.status !== 'running'; i++) {
      const r = await drv('state', 'web');
      if (r.ok) st = r.value as typeof st;
      else await new Promise((res) => setTimeout(res, 100));
    }
    assert.deepEqual([st.status, st.pid], ['running', pid]);
    ok(await drv('disable', 'web'));
    assert.equal((await h.exec(['test', '-e', '/home/tuser/.config/systemd/user/default.target.wants/berth-sandbox@web.service'], { reject: false })).exitCode, 1);
    ok(await drv('rm', 'web', 'force'));
  });

  test('start does no per-file work: the 20,000-file image starts with an empty upper dir and an untouched lower', async () => {
    const h = host();
    const lower = `${STORE}/snapshots/dir/${BIG}/fs`;
    const before = (await h.exec(['sh', '-c', `find ${lower} -newer ${lower}/bin/busybox -o -cnewer ${lower}/bin/busybox | wc -l; stat -c '%u %Z' ${lower}/data/1 ${lower}/data/20000`])).stdout;
    ok(await drv('create', 'big', { spec: spec('big', ['sleep', '100'], 'private', BIG) }));
    ok(await drv('start', 'big'));
    const upper = `${STORE}/sandboxes/big/upper`;
    // Running, its 20,000 files visible inside (exec: the journal is slow to attribute
    // lines on this loaded VM), and not one of them copied, chowned or touched.
    let listed: DriverResult & { stdout: string } = { ok: false, stdout: '' };
    for (let i = 0; i < 50 && !listed.ok; i++) {
      listed = await drv('exec', 'big', ['sh', '-c', 'ls /data | wc -l']);
      if (!listed.ok) await new Promise((r) => setTimeout(r, 200));
    }
    assert.match(listed.stdout, /^\s*20000\s*$/m);
    // Only the two mount points bwrap needs and this lower lacks; no file, no copy-up.
    assert.deepEqual((await h.exec(['find', upper, '-mindepth', '1', '-printf', '%P %y\\n'])).stdout.trim().split('\n').sort(), ['dev d', 'proc d']);
    const afterIt = (await h.exec(['sh', '-c', `find ${lower} -newer ${lower}/bin/busybox -o -cnewer ${lower}/bin/busybox | wc -l; stat -c '%u %Z' ${lower}/data/1 ${lower}/data/20000`])).stdout;
    assert.equal(afterIt, before);
    ok(await drv('rm', 'big', 'force'));
  });

  test('rootless unpacker: the hostile-layer corpus is refused or harmless, the user\'s own canary unchanged, nothing left', async () => {
    const h = host();
    const listing = async () => (await h.exec(['sh', '-c', `find ${CANARY} /home/tuser -maxdepth 1 -printf '%p %y %m %s %u\\n' | sort; cat ${CANARY}/keep`])).stdout;
    const snapshots = async () => (await h.exec(['sh', '-c', `ls -A ${STORE}/snapshots/dir | grep -v -e ${HEX} -e ${BIG} || true`])).stdout.trim();
    const before = await listing();
    const cases = hostileCases(CANARY).filter((c) => !c.config && !c.manifest && !c.served);
    assert.ok(cases.length >= 20, String(cases.length));
    const failures: string[] = [];
    for (const [i, c] of cases.entries()) {
      const diffIds: Digest[] = [];
      const files: Array<{ file: string; meta: Record<string, unknown> }> = [];
      for (const [j, entries] of c.layers.entries()) {
        const l = await makeTarLayer(entries, 'gzip', { dir: join(layers, 'cache') });
        diffIds.push(l.diffId);
        const file = join(layers, `c${i}-${j}.gz`);
        copyFileSync(l.path, file);
        chmodSync(file, 0o644);
        files.push({ file, meta: { diffId: l.diffId, digest: l.digest, mediaType: l.mediaType, size: l.size } });
      }
      const chains = chainIds(diffIds);
      const results: DriverResult[] = [];
      for (const [j, f] of files.entries()) results.push(await drv('unpack', f.file, { ...f.meta, chainId: chains[j] }));
      const refused = results.find((r) => !r.ok);
      if (c.code === 0 && refused) failures.push(`${c.name}: refused: ${refused.code} ${refused.message}`);
      if (c.code !== 0 && (!refused || refused.code !== 'HOSTILE_LAYER')) failures.push(`${c.name}: ${refused ? `${refused.code} ${refused.message}` : 'accepted'}`);
      if (c.code !== 0 && refused && c.message && !c.message.test(refused.message ?? '')) failures.push(`${c.name}: message ${refused.message}`);
      if ((await listing()) !== before) failures.push(`${c.name}: the canary changed`);
      if (c.code !== 0 && /\.tmp-/.test(await snapshots())) failures.push(`${c.name}: a work area was left`);
    }
    assert.deepEqual(failures, []);
    assert.doesNotMatch(await snapshots(), /\.tmp-/);
  });

  test('rootless unpacker: owners from the mapping, no layer overlay xattrs, devices skipped, IDs beyond the range refused', async () => {
    const h = host();
    const entries: TarEntry[] = [
      { path: 'www/', type: 'dir', uid: 33, gid: 33 }, { path: 'www/f', type: 'file', uid: 33, gid: 34, content: 'y', pax: { 'SCHILY.xattr.user.test': 'v', 'SCHILY.xattr.user.overlay.redirect': '/etc' } },
      { path: 'bin/', type: 'dir' }, { path: 'bin/suid', type: 'file', mode: 0o4755, content: 'z' },
      { path: 'dev/', type: 'dir' }, { path: 'dev/null', type: 'char', devmajor: 1, devminor: 3 },
      { path: 'gone/', type: 'dir' }, { path: 'gone/.wh.old', type: 'file', content: '' }, { path: 'op/', type: 'dir' }, { path: 'op/.wh..wh..opq', type: 'file', content: '' },
    ];
    const put = async (name: string, e: TarEntry[]) => {
      const l = await makeTarLayer(e, 'gzip', { dir: join(layers, 'cache') });
      const file = join(layers, `${name}.gz`);
      copyFileSync(l.path, file);
      chmodSync(file, 0o644);
      return { file, meta: { diffId: l.diffId, digest: l.digest, mediaType: l.mediaType, size: l.size, chainId: chainIds([l.diffId])[0]! } };
    };
    const good = await put('good', entries);
    // The work area of a pull that was killed (its pid is gone) is swept by the next one.
    const dead = (await asUser(['sh', '-c', 'echo $$'])).stdout.trim();
    const stale = `${STORE}/snapshots/dir/.tmp-${'f'.repeat(64)}-${dead}-0badc0de`;
    assert.equal((await asUser(['mkdir', '-p', `${stale}/fs/x`])).exitCode, 0);
    assert.equal((ok(await drv('unpack', good.file, good.meta)) as { has: boolean }).has, true);
    assert.equal((await h.exec(['test', '-e', stale], { reject: false })).exitCode, 1, 'stale work area swept');
    const fs = `${STORE}/snapshots/dir/${good.meta.chainId.slice(7)}/fs`;
    const st = (await h.exec(['sh', '-c', `cd ${fs} && stat -c '%n %u:%g %a %F' www www/f bin/suid gone/old && getfattr -d -m- www/f op 2>/dev/null; ls -A dev`])).stdout;
    assert.match(st, /^www 100032:100032 755 directory$/m);
    assert.match(st, /^www\/f 100032:100033 644 regular file$/m);
    assert.match(st, /^bin\/suid 1000:1000 4755 regular file$/m);
    assert.match(st, /^gone\/old 1000:1000 \d+ character special file$/m);
    assert.match(st, /user\.test="v"/);
    assert.match(st, /user\.overlay\.opaque="y"/);
    assert.doesNotMatch(st, /redirect/);
    assert.doesNotMatch(st, /null/);
    const far = await put('far', [{ path: 'x', type: 'file', uid: 70000, content: 'x' }]);
    const r = await drv('unpack', far.file, far.meta);
    assert.deepEqual([r.code, r.reason], ['FAILED_PRECONDITION', 'subid-range-too-small'], r.message);
    assert.doesNotMatch((await h.exec(['ls', '-A', `${STORE}/snapshots/dir`])).stdout, new RegExp(`${far.meta.chainId.slice(7)}|\\.tmp-`));
  });
});
