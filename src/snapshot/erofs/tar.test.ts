import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isBerthError } from '../../base/errors.ts';
import { TarParser, parsePax, type TarEntry } from './tar.ts';
import { gnuLong, header, rawTar, type RawEntry } from '../../../test/raw-tar.ts';

interface Got {
  e: TarEntry;
  content: Buffer;
}

/** Parses `tar`, fed in pieces of `step` bytes (0: all at once). */
function parse(tar: Buffer, step = 0): Got[] {
  const got: Got[] = [];
  let parts: Buffer[] = [];
  const p = new TarParser({
    entry: (e) => {
      parts = [];
      got.push({ e, content: Buffer.alloc(0) });
    },
    data: (b) => parts.push(Buffer.from(b)),
    hole: (n) => parts.push(Buffer.alloc(n)),
    end: () => {
      (got.at(-1) as Got).content = Buffer.concat(parts);
    },
  });
  if (step <= 0) p.push(tar);
  else for (let i = 0; i < tar.length; i += step) p.push(tar.subarray(i, i + step));
  p.end();
  return got;
}

function corrupt(fn: () => unknown): void {
  assert.throws(fn, (e: unknown) => isBerthError(e, 'CORRUPT'));
}

test('ustar basics: types, owners, modes, devices, links, prefix field, V7 directories', () => {
  const tar = rawTar([
    { name: 'd/', type: '5', mode: 0o1777, uid: 33, gid: 44 },
    { name: 'd/f', body: 'hello', mode: 0o4755, mtime: 1234567890 },
    { name: 'd/h', type: '1', linkname: 'd/f' },
    { name: 'd/s', type: '2', linkname: '../x' },
    { name: 'null', type: '3', devmajor: 1, devminor: 3 },
    { name: 'sda', type: '4', devmajor: 8, devminor: 0 },
    { name: 'p', type: '6' },
    { name: 'old/', type: '\0', magic: 'v7' },
  ]);
  // a prefix-field name (ustar only)
  const h = header({ name: 'leaf' }, 0);
  h.write('some/long/prefix', 345, 'latin1');
  h.write('        ', 148, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  const got = parse(Buffer.concat([tar.subarray(0, tar.length - 1024), h, Buffer.alloc(1024)]));
  assert.deepEqual(got.map((g) => [g.e.name, g.e.type]), [
    ['d/', 'directory'], ['d/f', 'file'], ['d/h', 'link'], ['d/s', 'symlink'], ['null', 'character-device'],
    ['sda', 'block-device'], ['p', 'fifo'], ['old/', 'directory'], ['some/long/prefix/leaf', 'file'],
  ]);
  const [d, f, hl, s, nul] = got;
  assert.equal(d!.e.mode, 0o1777);
  assert.equal(d!.e.uid, 33);
  assert.equal(d!.e.gid, 44);
  assert.equal(f!.content.toString(), 'hello');
  assert.equal(f!.e.mode, 0o4755);
  assert.equal(f!.e.mtime, 1234567890);
  assert.equal(hl!.e.linkname, 'd/f');
  assert.equal(s!.e.linkname, '../x');
  assert.deepEqual([nul!.e.devmajor, nul!.e.devminor], [1, 3]);
});

test('PAX: long UTF-8 path, linkpath, big ids, fractional and negative mtimes, binary xattrs', () => {
  const long = `${'ü'.repeat(80)}/名前`;
  const cap = Buffer.from('0100000200200000000000000000000000000000', 'hex');
  const odd = Buffer.from([0, 10, 255, 61, 32]); // NUL, newline, 0xff, '=', ' '
  const got = parse(rawTar([
    {
      name: 'short', body: 'x', pax: [
        ['path', long], ['uid', '3000000000'], ['gid', '70000'], ['mtime', '1600000000.123456789'],
        ['SCHILY.xattr.security.capability', cap], ['SCHILY.xattr.user.odd', odd], ['atime', '1.5'],
        ['LIBARCHIVE.xattr.user.b64%3Dname', Buffer.from('aGk=')],
      ],
    },
    { name: 'l', type: '2', pax: [['linkpath', `/${'x'.repeat(300)}`], ['mtime', '-1.25']] },
  ]), 7);
  const [a, b] = got;
  assert.equal(Buffer.from(a!.e.name, 'latin1').toString('utf8'), long);
  assert.equal(a!.e.uid, 3000000000);
  assert.equal(a!.e.gid, 70000);
  assert.deepEqual([a!.e.mtime, a!.e.mtimeNsec], [1600000000, 123456789]);
  assert.deepEqual(a!.e.xattrs.map(([n, v]) => [n, v.toString('hex')]), [
    ['security.capability', cap.toString('hex')], ['user.odd', odd.toString('hex')], ['user.b64=name', Buffer.from('hi').toString('hex')],
  ]);
  assert.equal(b!.e.linkname.length, 301);
  assert.deepEqual([b!.e.mtime, b!.e.mtimeNsec], [-2, 750000000]);
});

test('PAX mtime: the byte-level fast path reads what the string path reads, every form, whole or split', () => {
  const forms: Array<[string, [number, number]]> = [
    ['1600000000.123456789', [1600000000, 123456789]], ['1600000000.5', [1600000000, 500000000]],
    ['1600000000.', [1600000000, 0]], ['1600000000', [1600000000, 0]], ['0012.000000001', [12, 1]],
    ['123456789012345.1', [123456789012345, 100000000]],
    ['-1.25', [-2, 750000000]], ['1.1234567891', [1, 123456789]],
  ];
  const tar = rawTar(forms.map(([t], i) => ({ name: `f${i}`, body: 'x', pax: [['mtime', t]] as Array<[string, string]> })));
  const expected = forms.map(([, t]) => t);
  for (const step of [0, 1, 7, 512, 700]) {
    assert.deepEqual(parse(tar, step).map((g) => [g.e.mtime, g.e.mtimeNsec]), expected, `step ${step}`);
  }
  // digits only (native/erofs.c reads the same): Number() would also take these
  for (const bad of ['1.5x', '', 'x', '1..2', '1.-2', '1234567890123456.1', '1e3.5', ' 5.0', '0x1f.2', '+5.0']) {
    const t = rawTar([{ name: 'f', body: 'x', pax: [['mtime', bad]] }]);
    if (bad === '') assert.equal(parse(t)[0]!.e.mtime, parse(rawTar([{ name: 'f', body: 'x' }]))[0]!.e.mtime); // empty: the header's mtime
    else corrupt(() => parse(t));
  }
  // records read in place from a range of a bigger buffer, the bytes around it ignored
  const rec = Buffer.from('30 mtime=1796180803.617889408\n12 uid=1000\n');
  const big = Buffer.concat([Buffer.from('junk=1\n'), rec, Buffer.from('8 gid=7\n')]);
  const p = parsePax(big, 7, 7 + rec.length);
  assert.deepEqual([p.mtime, p.uid, p.gid], [[1796180803, 617889408], 1000, undefined]);
  assert.throws(() => parsePax(big, 7, 7 + 20), (e: unknown) => isBerthError(e, 'CORRUPT')); // a record cut by the range
});

test('GNU: L/K long names and links, base-256 sizes', () => {
  const name = `dir/${'n'.repeat(200)}`;
  const link = `target/${'t'.repeat(150)}`;
  const body = Buffer.alloc(1000, 7);
  const tar = Buffer.concat([
    gnuLong('L', name), gnuLong('K', link), rawTar([{ name: 'trunc', type: '1', magic: 'gnu' }], { noEnd: true }),
    rawTar([{ name: 'big', body, base256Size: true, magic: 'gnu' }]),
  ]);
  const [l, big] = parse(tar, 100);
  assert.equal(l!.e.name, name);
  assert.equal(l!.e.linkname, link);
  assert.equal(big!.e.size, 1000);
  assert.deepEqual(big!.content, body);
});

test('PAX sparse 1.0 and 0.1: holes come out as zeros, in order, to the real size', () => {
  const map = Buffer.alloc(512);
  map.write('2\n0\n3\n10\n2\n');
  const body = Buffer.concat([map, Buffer.from('abcXY')]);
  const got = parse(rawTar([
    { name: 'GNUSparseFile.0/s1', body, pax: [['GNU.sparse.major', '1'], ['GNU.sparse.minor', '0'], ['GNU.sparse.name', 's1'], ['GNU.sparse.realsize', '20']] },
    { name: 's2', body: 'abcXY', pax: [['GNU.sparse.map', '0,3,10,2'], ['GNU.sparse.size', '20'], ['GNU.sparse.name', 's2']] },
  ]), 3);
  for (const g of got) {
    assert.equal(g.e.sparse, true);
    assert.equal(g.e.realSize, 20);
    assert.equal(g.content.toString('latin1'), `abc${'\0'.repeat(7)}XY${'\0'.repeat(8)}`);
  }
  assert.deepEqual(got.map((g) => g.e.name), ['s1', 's2']);
  // a map that does not add up is corrupt
  corrupt(() => parse(rawTar([{ name: 's', body: 'abc', pax: [['GNU.sparse.map', '0,5'], ['GNU.sparse.size', '20']] }])));
  corrupt(() => parse(rawTar([{ name: 's', body: 'abc', pax: [['GNU.sparse.map', '5,3,0,0'], ['GNU.sparse.size', '20']] }])));
});

test('split anywhere: every chunking gives the same entries and bytes', () => {
  const entries: RawEntry[] = [];
  for (let i = 0; i < 20; i++) entries.push({ name: `f${i}`, body: Buffer.alloc(i * 97, i), pax: i % 3 ? undefined : [['mtime', `${i}.5`]] });
  const tar = rawTar(entries);
  const whole = JSON.stringify(parse(tar).map((g) => [g.e, g.content.toString('hex')]));
  for (const step of [1, 5, 511, 512, 513, 4096]) {
    assert.equal(JSON.stringify(parse(tar, step).map((g) => [g.e, g.content.toString('hex')])), whole, `step ${step}`);
  }
});

test('malformed archives are CORRUPT; end blocks and empty input are fine', () => {
  assert.deepEqual(parse(Buffer.alloc(0)), []);
  assert.deepEqual(parse(Buffer.alloc(512)), []); // one zero block, then EOF (tolerated)
  assert.equal(parse(Buffer.concat([rawTar([{ name: 'a', body: 'x' }]), Buffer.from('trailing junk after the end')])).length, 1);
  corrupt(() => parse(rawTar([{ name: 'a', body: 'x', badChecksum: true }])));
  corrupt(() => parse(rawTar([{ name: 'a', body: 'hello world' }], { noEnd: true }).subarray(0, 515)));
  corrupt(() => parse(Buffer.concat([Buffer.alloc(512), Buffer.from('x'), Buffer.alloc(511)])));
  corrupt(() => parse(Buffer.concat([rawTar([{ name: 'a', pax: [['path', 'b']] }], { noEnd: true }).subarray(0, 1024), Buffer.alloc(1024)])));
  corrupt(() => parse(rawTar([{ name: 'a', pax: [['size', 'twelve']] }])));
  const h = header({ name: 'a' }, 0);
  h.write('99999999', 100, 'latin1'); // non-octal mode (checksum now wrong too)
  corrupt(() => parse(Buffer.concat([h, Buffer.alloc(1024)])));
});

test('unknown types (old GNU sparse, volume labels) are reported with type null', () => {
  const got = parse(rawTar([{ name: 'S', type: 'S', magic: 'gnu' }, { name: 'V', type: 'V', magic: 'gnu' }]));
  assert.deepEqual(got.map((g) => g.e.type), [null, null]);
});

test('header checksum: the word-wise sum agrees with the byte sum, aligned or not, signed sums accepted, any wrong byte refused', () => {
  // high bytes (≥ 0x80) in every lane (the header is written and read as latin1)
  const tar = rawTar([
    { name: 'héllo/ÿÿÿÿþþþþ', body: 'x' },
    { name: 'l', type: '2', linkname: 'ü'.repeat(49) },
  ]);
  for (const shift of [0, 1, 2, 3]) {
    // copy at an offset so the headers sit at every alignment of their ArrayBuffer
    const buf = Buffer.alloc(tar.length + 8);
    tar.copy(buf, shift);
    const view = buf.subarray(shift, shift + tar.length);
    assert.deepEqual(parse(view).map((g) => g.e.name), ['héllo/ÿÿÿÿþþþþ', 'l']);
    assert.deepEqual(parse(view, 7).map((g) => g.e.name), ['héllo/ÿÿÿÿþþþþ', 'l']);
    for (const at of [0, 3, 99, 147, 156, 200, 511]) {
      const bad = Buffer.from(view);
      bad[at] = ((bad[at] as number) + 1) & 0xff;
      corrupt(() => parse(bad));
    }
  }
  // an old tar's signed sum (bytes ≥ 0x80 counted negative) is accepted too
  const h = Buffer.from(tar);
  let signed = 8 * 0x20;
  for (let i = 0; i < 512; i++) if (i < 148 || i >= 156) signed += (h[i] as number) > 127 ? (h[i] as number) - 256 : (h[i] as number);
  h.write(`${signed.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  assert.equal(parse(h)[0]?.e.name, 'héllo/ÿÿÿÿþþþþ');
});
