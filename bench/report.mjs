#!/usr/bin/env node
// bench/report.mjs RESULTS_DIR - the markdown report of one bench/run.sh run.
// Reads RESULTS_DIR/rows.jsonl (one line per measured or failed row), the hyperfine
// JSON in RESULTS_DIR/json/<row>.json and RESULTS_DIR/env.txt; prints markdown.
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: report.mjs RESULTS_DIR');
  process.exit(2);
}

const rows = readFileSync(join(dir, 'rows.jsonl'), 'utf8')
  .split('\n')
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l));
for (const r of rows) {
  const f = join(dir, 'json', `${r.name}.json`);
  if (r.status === 'ok' && existsSync(f)) r.hf = JSON.parse(readFileSync(f, 'utf8')).results[0];
}
const byName = new Map(rows.map((r) => [r.name, r]));
const env = existsSync(join(dir, 'env.txt')) ? readFileSync(join(dir, 'env.txt'), 'utf8').trim() : '';

const md = (s) => String(s).replace(/\|/g, '\\|').replace(/\n/g, ' ');
const fmt = (x, unit) => {
  if (x == null || Number.isNaN(x)) return '–';
  if (unit === 'ms') x *= 1000;
  const a = Math.abs(x);
  return a >= 100 ? x.toFixed(0) : a >= 10 ? x.toFixed(1) : a >= 1 ? x.toFixed(2) : x.toFixed(3);
};
const short = (s, n) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);
const cell = (r, unit = 's', width = 90) => {
  if (!r) return '–';
  if (!r.hf) return `failed: ${md(short(r.error, width))}`;
  return `**${fmt(r.hf.median, unit)}** (${fmt(r.hf.min, unit)}–${fmt(r.hf.max, unit)})`;
};
const ratio = (a, b) => (a?.hf && b?.hf ? `${(a.hf.median / b.hf.median).toFixed(2)}×` : '–');

const out = [];
const p = (...l) => out.push(...l);

p(`# berth bench: ${dir.split('/').filter(Boolean).pop()}`, '', '```', env, '```', '');

const images = [...new Set(rows.filter((r) => r.section === 'pull').map((r) => r.image))];
if (images.length) {
  const get = (tool, img) => byName.get(`${tool.startsWith('floor-') ? tool : `pull-${tool}`}-${img}`);
  p(
    '## Pull: cold pull from the local registry (seconds, median (min–max))',
    '',
    'Pull-to-store: berth vs `skopeo copy docker:// → oci:` (blobs only). Pull-to-rootfs: berth vs `podman pull`',
    '(overlay store) and `skopeo copy` + `umoci raw unpack`. Floors: the same layer blobs read from the local',
    'disk, decompressed only (`zcat > /dev/null`) or decompressed and extracted by GNU tar onto the bench',
    'dir\'s file system (whiteouts not applied). Ratios are berth\'s median over the other\'s median: <1× means',
    'berth is faster. When berth stores a layer as one image file (erofs) instead of a tree of files, it can',
    'beat the tar floor; decompression (zcat) is then the hard floor.',
    '',
    'Issue 11\'s floor is `igzip -dc` (ISA-L) of each blob to /dev/null, one after the other; its targets:',
    'Debian ≤ 0.25× podman and ≤ 4× the igzip floor, 20,000 files ≤ 0.05× podman, busybox ≤ 1.0× podman.',
    '',
    '| image | berth pull | skopeo copy | podman pull | skopeo + umoci | floor: zcat | floor: igzip | floor: zcat \\| tar -x | berth/skopeo | berth/podman | berth/(skopeo+umoci) | berth/floor (tar) | berth/floor (zcat) | berth/floor (igzip) | loadavg 1-min | CPU pressure |',
    '|---|---|---|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---|---|',
  );
  const range = (xs, suffix = '') => {
    const v = xs.filter((x) => x !== '' && x != null && !Number.isNaN(Number(x))).map(Number);
    if (!v.length) return '?';
    const lo = Math.min(...v), hi = Math.max(...v);
    return lo === hi ? `${lo}${suffix}` : `${lo}–${hi}${suffix}`;
  };
  for (const img of images) {
    const rs = ['berth', 'skopeo', 'podman', 'skopeo+umoci', 'floor-zcat', 'floor-tar', 'floor-igzip'].map((t) => get(t, img));
    const [b, s, pm, su, fz, ft, fi] = rs;
    const ok = rs.filter((r) => r);
    const load = range(ok.map((r) => r.loadavg.split(' ')[0]));
    const psi = range(ok.filter((r) => r.hf).map((r) => r.cpu_psi_pct), '%');
    p(`| ${img} | ${cell(b)} | ${cell(s)} | ${cell(pm)} | ${cell(su)} | ${cell(fz)} | ${cell(fi)} | ${cell(ft)} | ${ratio(b, s)} | ${ratio(b, pm)} | ${ratio(b, su)} | ${ratio(b, ft)} | ${ratio(b, fz)} | ${ratio(b, fi)} | ${load} | ${psi} |`);
  }
  p('', 'loadavg 1-min and CPU pressure: range over the image\'s rows (per row: see "Every row" below).', '');
  p('berth pull keeps its store between runs and removes only the image (`rmi` + `image prune`), as podman\'s row keeps',
    'its store (`rmi`). Into a store that does not exist yet (a wiped root: the store is created and its file system',
    'probed first):', '');
  for (const img of images) {
    const n = get('berth-newstore', img);
    if (n) p(`- ${img}: ${cell(n)} s, ${ratio(n, get('podman', img))} podman`);
  }
  p('');
  const stages = existsSync(join(dir, 'stages.txt')) ? readFileSync(join(dir, 'stages.txt'), 'utf8').trim() : '';
  if (stages) {
    p(
      '### Where berth\'s unpack time goes (bench/stages.mts)',
      '',
      'The image\'s layer blobs from local disk, all layers in parallel, each stage adding one step of the pipeline;',
      'a stage\'s share is its increment over the previous one. Download (registry, HTTP, blob digest, content',
      'store) is what `berth pull` costs beyond `store`.',
      '',
      '```', stages, '```', '',
    );
  }
}

const startup = rows.filter((r) => r.section === 'startup');
if (startup.length) {
  const node = byName.get('startup-node');
  const help = byName.get('startup-berth-help');
  p('## Startup (milliseconds, median (min–max))', '', '| command | time | berth/node |', '|---|---|---:|');
  p(`| \`node -e 0\` | ${cell(node, 'ms')} | |`);
  p(`| \`${help?.command ?? './bin/berth --help'}\` | ${cell(help, 'ms')} | ${ratio(help, node)} |`);
  if (node?.hf && help?.hf) p('', `berth's own startup cost over a bare node: ${fmt(help.hf.median - node.hf.median, 'ms')} ms (median difference).`);
  p('');
}

const starts = rows.filter((r) => r.section === 'start');
if (starts.length) {
  p(
    '## Start (milliseconds, median (min–max))',
    '',
    '`berth run --rm IMAGE true` in the foreground on this host (private user + network namespace) vs',
    '`podman run --rm --network=none --runtime=runc` (rootful, no user namespace) vs raw',
    '`systemd-nspawn --keep-unit --register=no` on the same rootfs unpacked by umoci. Target: berth ≤ 0.75× podman.',
    '',
    '| image | berth run --rm | podman run --rm | systemd-nspawn | berth/podman | berth/nspawn |',
    '|---|---|---|---|---:|---:|',
  );
  const node = byName.get('start-node') ?? byName.get('startup-node');
  for (const img of [...new Set(starts.filter((r) => r.name.startsWith('start-berth-')).map((r) => r.image))]) {
    const [b, pm, n] = ['berth', 'podman', 'nspawn'].map((t) => byName.get(`start-${t}-${img}`));
    p(`| ${img} | ${cell(b, 'ms')} | ${cell(pm, 'ms')} | ${cell(n, 'ms')} | ${ratio(b, pm)} | ${ratio(b, n)} |`);
    const ns = byName.get(`start-nspawn-noseccomp-${img}`);
    // berth loads nspawn's programs from its cache (native/seccomp.c): nspawn's share of
    // berth's start is nspawn without the compile, when that row was measured
    const nb = ns?.hf ? ns : n;
    if (b?.hf && nb?.hf && node?.hf) {
      const own = b.hf.median - nb.hf.median - node.hf.median;
      const what = nb === ns ? 'nspawn without its compile (berth loads the cached programs)' : 'nspawn';
      p(`|  ↳ where berth's ${fmt(b.hf.median, 'ms')} ms go | Node.js start ${fmt(node.hf.median, 'ms')} | berth's own work ${fmt(own, 'ms')} (image lookup, settings, rootfs helper mount/umount, seccomp-init) | ${what} ${fmt(nb.hf.median, 'ms')} | | |`);
    }
    if (n?.hf && ns?.hf) p(`|  ↳ of nspawn's ${fmt(n.hf.median, 'ms')} ms | seccomp filter compile ${fmt(n.hf.median - ns.hf.median, 'ms')} (berth: once per boot) | nspawn with SYSTEMD_SECCOMP=0 ${fmt(ns.hf.median, 'ms')} | | | |`);
  }
  const d = ['start-d-berth-busybox', 'start-d-podman-busybox', 'stop-berth-busybox', 'stop-podman-busybox'].map((x) => byName.get(x));
  if (d.some(Boolean)) {
    p(
      '',
      'Detached (busybox, `sleep 1000`): `berth run -d` returns once systemd-nspawn@NAME.service is active; measured in',
      'a test host (systemd as PID 1 in an nspawn container, bench/testhost.mts) through `nsenter`, because this VM\'s',
      'PID 1 is not systemd. podman on this host with `--init` (so SIGTERM reaches `sleep`, as with berth\'s init).',
      '',
      '| | berth | podman | berth/podman |',
      '|---|---|---|---:|',
      `| run -d | ${cell(d[0], 'ms')} | ${cell(d[1], 'ms')} | ${ratio(d[0], d[1])} |`,
      `| stop | ${cell(d[2], 'ms')} | ${cell(d[3], 'ms')} | ${ratio(d[2], d[3])} |`,
    );
  }
  const memFile = join(dir, 'mem.jsonl');
  if (existsSync(memFile)) {
    const mem = readFileSync(memFile, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
    if (mem.length) {
      p('', '### Resident per running container', '', '| what | kB (RSS) | note |', '|---|---:|---|');
      for (const m of mem) p(`| ${md(m.what)} | ${md(m.kb || '?')} | ${md(m.note)} |`);
    }
  }
  p('');
}

const netFile = join(dir, 'net.jsonl');
const netStarts = rows.filter((r) => r.section === 'net');
if (existsSync(netFile) || netStarts.length) {
  const net = existsSync(netFile) ? readFileSync(netFile, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l)) : [];
  const v = (n) => net.find((x) => x.name === n);
  const num = (n) => Number(v(n)?.value ?? 0);
  const r2 = (a, b) => (a > 0 && b > 0 ? `${(a / b).toFixed(2)}×` : '–');
  p('## Networking (in a test host; every packet stays inside it)', '');
  if (net.length) {
    p('HTTP throughput of one 512 MiB download from busybox httpd in a machine (curl, median of 5). Target: through 127.0.0.1 ≥ 0.9× direct.', '',
      '| path | MB/s | vs direct | note |', '|---|---:|---:|---|');
    for (const x of net) p(`| ${md(x.name)} | ${md(x.value)} | ${r2(Number(x.value), num('net-tput-berth-direct'))} | ${md(x.note)} |`);
    p('');
  }
  const [f, b, bn, pm, pn] = ['net-start-floor', 'net-start-berth', 'net-start-berth-none', 'net-start-podman', 'net-start-podman-none'].map((x) => byName.get(x));
  if (b || pm) {
    const less = (a) => (a?.hf && f?.hf ? { hf: { median: a.hf.median - f.hf.median } } : undefined);
    p('`run --rm busybox true`. berth in the test host as a transient unit (systemd-run --wait; its own cost is the floor row, subtracted in the last column); podman on this VM inside a network namespace of the bench\'s. Target: berth ≤ 0.75× podman.', '',
      '| | berth | podman | berth/podman | (berth − floor)/podman |', '|---|---|---|---:|---:|',
      `| default networking (berth: zone; podman: bridge) | ${cell(b, 'ms')} | ${cell(pm, 'ms')} | ${ratio(b, pm)} | ${ratio(less(b), pm)} |`,
      `| --network=none | ${cell(bn, 'ms')} | ${cell(pn, 'ms')} | ${ratio(bn, pn)} | ${ratio(less(bn), pn)} |`,
      `| floor: systemd-run --wait true | ${cell(f, 'ms')} | | | |`, '');
  }
}

const scale = rows.filter((r) => r.section === 'scale');
if (scale.length) {
  const g = (n) => byName.get(n);
  p(
    '## Scale (seconds, median (min–max))',
    '',
    '**berth runs in a test host** (systemd 252 as PID 1 in an nspawn container on this VM, driven through',
    '`nsenter`), **podman 4 on this VM itself**: podman cannot run in the test host (its cgroup setup needs',
    'writable v1 hierarchies) and `berth run -d` needs systemd as PID 1, which this VM lacks. `run --rm` rows run',
    'both on this VM. Storms: N commands at once from one shell loop with `&` (bench/storm.sh). podman `rm -f -t 0`',
    '(berth `rm -f` kills at once too). Targets from issue 9 in the last column.',
    '',
    '| row | berth | podman | berth/podman | target |',
    '|---|---|---|---:|---|',
  );
  const line = (label, b, pm, target) => p(`| ${label} | ${cell(g(b))} | ${cell(g(pm))} | ${ratio(g(b), g(pm))} | ${target} |`);
  line('`ps -a`, 200 machines / 100 running', 'scale-ps-a-200-berth', 'scale-ps-a-200-podman', '≤ 1.5×');
  line('`ps`, 100 running (of 200)', 'scale-ps-200-berth', 'scale-ps-200-podman', '');
  line('`ps -a`, 10 machines / 5 running', 'scale-ps-a-10-berth', 'scale-ps-a-10-podman', '');
  line('100 `run -d` at once', 'scale-run100-berth', 'scale-run100-podman', '≤ 1.0×');
  line('100 `rm -f` at once (running)', 'scale-rm100-berth', 'scale-rm100-podman', '≤ 1.0×');
  line('`run -d` until active', 'scale-rund-berth', 'scale-rund-podman', '≤ 1.0×');
  line('`run --rm --network=none busybox true` (both on this VM)', 'scale-runrm-berth', 'scale-runrm-podman', '≤ 0.75×');
  p('', `\`ps -a\` 200 machines over 10 (berth): ${ratio(g('scale-ps-a-200-berth'), g('scale-ps-a-10-berth'))} (target ≤ 1.5×); podman: ${ratio(g('scale-ps-a-200-podman'), g('scale-ps-a-10-podman'))}.`);
  const memFile = join(dir, 'scale-mem.jsonl');
  if (existsSync(memFile)) {
    const mem = readFileSync(memFile, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
    if (mem.length) {
      p('', '### Resident memory per running machine (kB, averaged over the running ones)', '', '| what | RSS | PSS | n |', '|---|---:|---:|---:|');
      for (const m of mem) p(`| ${md(m.what)} | ${md(m.rss_kb)} | ${md(m.pss_kb)} | ${md(m.n)} |`);
    }
  }
  p('');
}

const measured = rows;
if (measured.length) {
  p(
    '## Every row',
    '',
    'Times in seconds. user+sys: mean CPU time of the timed process tree per run. loadavg: 1/5/15-min load right',
    'after the row; CPU pressure: share of the row\'s wall time in which some runnable task waited for a CPU',
    '(/proc/pressure/cpu "some"; our own threads count too). The machine may be shared: treat differences',
    'below ~10-20% as noise when these are high.',
    '',
    '| row | median | min | max | mean ± sd | user+sys | runs | loadavg after | CPU pressure |',
    '|---|---:|---:|---:|---:|---:|---:|---|---:|',
  );
  for (const r of measured) {
    const h = r.hf;
    if (!h) {
      p(`| ${r.name} | failed: ${md(r.error)} | | | | | | ${r.loadavg} | |`);
      continue;
    }
    p(
      `| ${r.name} | **${fmt(h.median)}** | ${fmt(h.min)} | ${fmt(h.max)} | ${fmt(h.mean)} ± ${fmt(h.stddev ?? 0)} | ${fmt(h.user + h.system)} | ${h.times.length} | ${r.loadavg} | ${r.cpu_psi_pct === '' ? '?' : `${r.cpu_psi_pct}%`} |`,
    );
  }
  p('', '## Commands', '', 'Run by `hyperfine -N` (no shell); `prepare` runs before every timed run.', '', '```');
  for (const r of measured) {
    p(`# ${r.name}${r.status === 'ok' ? '' : ` (${r.status})`}`, r.command);
    if (r.prepare) p(`#   prepare: ${r.prepare}`);
  }
  p('```', '');
  const failed = measured.filter((r) => r.status !== 'ok');
  if (failed.length) {
    p('Failed rows were run once (the probe) and not timed; their full output is in `err/<row>.txt`.', '');
  }
}

process.stdout.write(out.join('\n') + '\n');
