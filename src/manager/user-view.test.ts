import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isBerthError } from '../base/errors.ts';
import { lookupAccount, parsePasswdLine } from './user-view.ts';
import { parseShowBlocks } from '../runtime/bwrap/translate-unit.ts';

test('passwd lines: the account of exactly that name, or NOT_FOUND', () => {
  assert.deepEqual(parsePasswdLine('tuser:x:1000:1000:,,,:/home/tuser:/bin/bash\n', 'tuser'), { name: 'tuser', uid: 1000, gid: 1000, home: '/home/tuser' });
  for (const [line, name] of [['', 'tuser'], ['other:x:1:1::/home/o:/bin/sh', 'tuser'], ['tuser:x:abc:1::/h:/bin/sh', 'tuser'], ['tuser:x:1:1::relative:/bin/sh', 'tuser']] as const) {
    assert.throws(() => parsePasswdLine(line, name), (e) => isBerthError(e, 'NOT_FOUND'), line);
  }
});

test('--user NAME must look like a user name before anything is asked', async () => {
  for (const bad of ['../etc', 'a b', '-rf', '', 'x'.repeat(40), 'a/b', 'root\n']) {
    await assert.rejects(lookupAccount(bad), (e) => isBerthError(e, 'INVALID_ARGUMENT') && /not a user name/.test((e as Error).message), JSON.stringify(bad));
  }
  await assert.rejects(lookupAccount('no-such-user-berth'), (e) => isBerthError(e, 'NOT_FOUND'));
  assert.equal((await lookupAccount('root')).uid, 0);
});

test('systemctl show of several units: one property map per Id', () => {
  const m = parseShowBlocks('Id=berth-sandbox@a.service\nActiveState=active\nMainPID=42\n\nId=berth-sandbox@b.service\nActiveState=inactive\nMainPID=0\n\nActiveState=stray\n');
  assert.deepEqual([...m.keys()], ['berth-sandbox@a.service', 'berth-sandbox@b.service']);
  assert.equal(m.get('berth-sandbox@a.service')?.MainPID, '42');
  assert.equal(parseShowBlocks('').size, 0);
});

test('the drop-in dump read as the user: name/text pairs, odd names and duplicates dropped', async () => {
  const { parseDropInDump } = await import('./user-view.ts');
  const m = parseDropInDump('berth-sandbox@web.service.d\0[X-Berth]\nImage=a\n\0berth-sandbox@../x.service.d\0evil\0berth-sandbox@web.service.d\0second\0other.d\0x\0berth-sandbox@db.service.d\0\0');
  assert.deepEqual([...m.entries()], [['web', '[X-Berth]\nImage=a\n'], ['db', '']]);
  assert.equal(parseDropInDump('').size, 0);
  assert.equal(parseDropInDump('berth-sandbox@half.service.d').size, 0, 'a name without its text (cut off) is dropped');
});
