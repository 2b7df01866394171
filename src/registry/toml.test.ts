import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseToml } from './toml.ts';

test('strings: the quick path (no escape on the line) and the escaped path give the same values', () => {
  assert.deepEqual(parseToml('a = "plain"\nb = "x\\"y"\nc = \'lit\\eral\'\nd = "tab\\there" # comment\ne = ""\nf = \'\'\n'), {
    a: 'plain', b: 'x"y', c: 'lit\\eral', d: 'tab\there', e: '', f: '',
  });
  assert.deepEqual(parseToml('"quoted key" = 1\n\'lit key\' = 2\nbare-key_9 = 3\n'), { 'quoted key': 1, 'lit key': 2, 'bare-key_9': 3 });
  assert.deepEqual(parseToml('[[r]]\nlocation = "a\\u00e9"\n[[r]]\nlocation = "b" # the second\n'), { r: [{ location: 'a\u00e9' }, { location: 'b' }] });
});

test('comments to the end of the line; errors name the line', () => {
  assert.deepEqual(parseToml('# only\n#\n\n  # indented\nx = true # trailing "quote\n# last, no newline'), { x: true });
  assert.throws(() => parseToml('a = 1\nb = "open\nc = 2\n', 'f.conf'), /f\.conf:[23]: unterminated string/);
  assert.throws(() => parseToml("a = 'open", 'f.conf'), /f\.conf:1: unterminated string/);
  assert.throws(() => parseToml('# c\n# c\nx = "a" y\n', 'f.conf'), /f\.conf:3: unexpected "y" after value/);
});
