import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { parseFormatFile, storeFormat } from './format.ts';

test('recorded snapshot format: only erofs or dir count', () => {
  assert.equal(parseFormatFile('erofs\n'), 'erofs');
  assert.equal(parseFormatFile(' dir '), 'dir');
  assert.equal(parseFormatFile('zfs'), undefined);
  assert.equal(parseFormatFile(undefined), undefined);
});

test('an explicit format wins without probing or recording', async () => {
  assert.equal(await storeFormat('/nonexistent/berth-format-test', { explicit: 'dir' }), 'dir');
});
