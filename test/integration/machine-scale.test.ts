/**
 * @module test/integration/machine-scale
 * Boring at scale, in a test host: 100 `berth run -d` at once from one shell loop with
 * `&` all succeed, each machine with its own UID range (none overlapping another, an
 * /etc/subuid or /etc/subgid entry, or a range nspawn holds a lock for), every unit file
 * written once and complete, no daemon-reload; `ps -a` during the storm and of machines
 * half created or half removed answers (exit 0) and shows what systemd shows; then 100
 * `berth rm -f` at once leave nothing behind. busybox + sleep only: 2 cores.
 */
import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { pickRange } from '../../src/runtime/nspawn/userns.ts';
import { repoRoot } from '../testhost/index.ts';
import { useMachineHost } from './machine-helpers.ts';

const N = Number(process.env.BERTH_TEST_SCALE_N ?? 100);
const names = Array.from({ length: N }, (_, i) => `sc${i + 1}`);

interface PsEntry { name: string; state: string; running: boolean; registered?: string; image?: string; unit: string }

/** One shell loop: every command in the background at once, then each one's exit status. */
function storm(cmds: string[], extra = ''): string {
  const jobs = cmds.map((c, i) => `( ${c} > /tmp/storm/${i}.out 2> /tmp/storm/${i}.err; echo $? > /tmp/storm/${i}.rc ) &`).join('\n');
  return `rm -rf /tmp/storm; mkdir -p /tmp/storm\n${jobs}\n${extra}\nwait\nfor i in $(seq 0 ${cmds.length - 1}); do printf '%s %s\\n' "$i" "$(cat /tmp/storm/$i.rc)"; done`;
}

const reloads = "journalctl -b -o cat --no-pager -u init.scope | grep -c '^Reloading' || true";

describe(`${N} machines at once`, { timeout: 1_800_000 }, () => {
  const { berth, sh, host } = useMachineHost('mscale');
  const B = `${repoRoot}/bin/berth`;

  test(`${N} concurrent run -d: all succeed, distinct ranges, nothing lost or doubled, no reload`, async (t) => {
    await berth(['ps']); // imports the busybox image
    // Ranges the first machines would hash to are already taken elsewhere: by a rootless
    // user (/etc/subuid, /etc/subgid) and by nspawn's own pick (its lock file).
    const r1 = pickRange(names[0] as string, []);
    const r2 = pickRange(names[1] as string, []);
    const r3 = pickRange(names[2] as string, []);
    await sh(`echo "tuser:${r1.base}:65536" >> /etc/subuid; echo "tgroup:${r2.base}:65536" >> /etc/subgid; mkdir -p /run/systemd/nspawn-uid; touch /run/systemd/nspawn-uid/${r3.base}`);
    const before = Number((await sh(reloads)).stdout.trim());
    const t0 = Date.now();
    const out = await host().run(['sh', '-c', storm(names.map((n) => `${B} run -d --name ${n} busybox sleep 100000`),
      // ps -a while machines are half created must still answer
      `sleep 2; for k in 1 2 3; do ${B} ps -a > /tmp/storm/ps$k.out 2>&1; echo $? > /tmp/storm/ps$k.rc; done`)], { timeoutMs: 900_000 });
    t.diagnostic(`${N} run -d at once: ${Date.now() - t0} ms`);
    const failed = out.stdout.trim().split('\n').filter((l) => !l.endsWith(' 0'));
    if (failed.length) t.diagnostic((await sh(`cat /tmp/storm/${failed[0]?.split(' ')[0]}.err`, { reject: false })).stdout);
    assert.deepEqual(failed, []);
    assert.equal((await sh('cat /tmp/storm/ps1.rc /tmp/storm/ps2.rc /tmp/storm/ps3.rc')).stdout, '0\n0\n0\n', 'ps -a during the storm');

    const files = (await sh('ls /etc/systemd/nspawn')).stdout.trim().split('\n').sort();
    assert.deepEqual(files, names.map((n) => `${n}.nspawn`).sort());
    const dropIns = await sh('for d in /etc/systemd/system/systemd-nspawn@*.service.d; do ls $d | tr "\\n" " "; echo; done | sort | uniq -c');
    assert.equal(dropIns.stdout.trim(), `${N} 10-berth-rootfs.conf 50-berth-lifecycle.conf 50-berth-resources.conf 50-berth-unit.conf 60-berth-network.conf`, 'every machine has its five drop-ins (network: the default zone), none twice');
    assert.equal((await sh('ls -a /etc/systemd/nspawn /etc/systemd/system/systemd-nspawn@*.service.d | grep -c "\\.tmp$" || true')).stdout.trim(), '0', 'no temp file left');

    const ranges = (await sh("grep -h '^PrivateUsers=' /etc/systemd/nspawn/*.nspawn | cut -d= -f2")).stdout.trim().split('\n')
      .map((l) => l.split(':').map(Number) as [number, number]).sort((a, b) => a[0] - b[0]);
    assert.equal(ranges.length, N);
    for (let i = 1; i < ranges.length; i++) {
      const [prevBase, prevSize] = ranges[i - 1] as [number, number];
      assert.ok((ranges[i] as [number, number])[0] >= prevBase + prevSize, `ranges overlap: ${ranges[i - 1]} ${ranges[i]}`);
    }
    for (const r of [r1, r2, r3]) assert.ok(!ranges.some(([b]) => b === r.base), `range ${r.base} is taken elsewhere but was used`);
    // What the kernel says: each leader's uid_map is its file's range.
    const maps = (await sh("for m in $(machinectl list --no-legend | awk '{print $1}'); do echo $(awk '{print $2}' /proc/$(machinectl show $m -p Leader --value)/uid_map); done | sort -u | wc -l")).stdout.trim();
    assert.equal(maps, String(N), 'distinct uid maps');

    const active = (await sh("systemctl list-units --plain --no-legend 'systemd-nspawn@*' | grep -c ' active running '")).stdout.trim();
    assert.equal(active, String(N));
    assert.equal(Number((await sh(reloads)).stdout.trim()) - before, 0, 'no daemon-reload for new machines');
    const ps = JSON.parse((await berth(['ps', '-a', '--json'])).stdout) as PsEntry[];
    assert.equal(ps.filter((m) => m.running && m.registered === 'container').length, N);
  });

  test('ps of machines half created and half removed', async () => {
    // Half created: a claim whose creator died (settings only), and a settings file cut short.
    await sh('cp /etc/systemd/nspawn/sc1.nspawn /etc/systemd/nspawn/half1.nspawn; printf "[Exec]\\nParameters=/run/host/berth/init -- sle" > /etc/systemd/nspawn/half2.nspawn; printf "\\0\\377[X-Berth\\n" > /etc/systemd/nspawn/half3.nspawn');
    // Half removed: a running machine whose settings and drop-ins are already gone.
    await sh('rm -rf /etc/systemd/nspawn/sc2.nspawn');
    const ps = JSON.parse((await berth(['ps', '-a', '--json'])).stdout) as PsEntry[];
    const by = new Map(ps.map((m) => [m.name, m]));
    assert.equal(by.get('half1')?.state, 'inactive');
    assert.equal(by.get('half1')?.image, 'docker.io/library/busybox:latest');
    assert.equal(by.get('half2')?.state, 'inactive');
    assert.equal(by.get('half3')?.state, 'inactive');
    assert.equal(by.get('sc2')?.state, 'active', 'still running: systemd and machined say so');
    assert.equal(by.get('sc2')?.registered, 'container');
    const table = (await berth(['ps'])).stdout;
    assert.match(table, /^sc2\s+-\s/m, 'listed without its image');
    assert.doesNotMatch(table, /^half/m, 'not running: only with -a');
    const st = await berth(['status', 'sc2']);
    assert.match(st.stdout, /Active: active \(running\)/);
    await berth(['rm', '-f', 'half1', 'half2', 'half3']);
    assert.equal((await sh('ls /etc/systemd/nspawn | grep -c half || true')).stdout.trim(), '0');
  });

  test(`${N} concurrent rm -f: nothing left behind, reloads shared`, async (t) => {
    const before = Number((await sh(reloads)).stdout.trim());
    const t0 = Date.now();
    const out = await host().run(['sh', '-c', storm(names.map((n) => `${B} rm -f ${n}`),
      `sleep 1; for k in 1 2; do ${B} ps -a > /tmp/storm/ps$k.out 2>&1; echo $? > /tmp/storm/ps$k.rc; done`)], { timeoutMs: 900_000 });
    t.diagnostic(`${N} rm -f at once: ${Date.now() - t0} ms`);
    const failed = out.stdout.trim().split('\n').filter((l) => !l.endsWith(' 0'));
    if (failed.length) t.diagnostic((await sh(`cat /tmp/storm/${failed[0]?.split(' ')[0]}.err`, { reject: false })).stdout);
    assert.deepEqual(failed, []);
    assert.equal((await sh('cat /tmp/storm/ps1.rc /tmp/storm/ps2.rc')).stdout, '0\n0\n', 'ps -a during removal');
    const left = await sh(`ls -A /etc/systemd/nspawn /var/lib/machines; ls /etc/systemd/system | grep nspawn || true;
      machinectl list --no-legend; systemctl list-units --all --plain --no-legend 'systemd-nspawn@*'; grep ' /var/lib/machines/' /proc/self/mountinfo || true`);
    assert.equal(left.stdout.replace(/^\/[^\n]*:\n/gm, '').trim(), '', left.stdout);
    const r = Number((await sh(reloads)).stdout.trim()) - before;
    t.diagnostic(`daemon-reloads during ${N} rm -f: ${r}`);
    assert.ok(r <= 3, `${r} reloads`);
    assert.deepEqual(JSON.parse((await berth(['ps', '-a', '--json'])).stdout), []);
  });
});
