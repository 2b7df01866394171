import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMountInfo } from './mountinfo.ts';

test('parses mountinfo lines incl. optional fields and escapes', () => {
  const text = [
    '36 35 98:0 /mnt1 /mnt\\040x rw,noatime master:1 - ext3 /dev/root rw,errors=continue',
    '90 22 0:50 / /r/merged ro,relatime shared:5 - overlay overlay ro,lowerdir=mnt/a:mnt/b',
  ].join('\n');
  const m = parseMountInfo(text);
  assert.equal(m.length, 2);
  assert.equal(m[0]?.mountPoint, '/mnt x');
  assert.equal(m[0]?.fsType, 'ext3');
  assert.equal(m[1]?.superOptions, 'ro,lowerdir=mnt/a:mnt/b');
});
