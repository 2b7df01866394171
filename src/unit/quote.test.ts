import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isBerthError } from '../base/errors.ts';
import {
  assertSafeValue, escapeNspawnPath, escapeSpecifiers, parseNspawnWords, quoteEnvironment, quoteExecArg, quoteNspawnWord,
} from './quote.ts';

const invalid = (e: unknown): boolean => isBerthError(e, 'INVALID_ARGUMENT');

test('quoteExecArg: C escapes, $$ and %% inside double quotes', () => {
  assert.equal(quoteExecArg('plain'), '"plain"');
  assert.equal(quoteExecArg('a\nb\t"c"\\d $X %n'), '"a\\nb\\t\\"c\\"\\\\d $$X %%n"');
  assert.equal(quoteExecArg(''), '""');
  assert.equal(quoteExecArg("it's"), `"it's"`);
});

test('quoteEnvironment: whole assignment quoted, % doubled, $ kept', () => {
  assert.equal(quoteEnvironment('A', 'x y'), '"A=x y"');
  assert.equal(quoteEnvironment('A', 'a\nb"$HOME%i\\'), '"A=a\\nb\\"$HOME%%i\\\\"');
  assert.throws(() => quoteEnvironment('1A', 'x'), invalid);
  assert.throws(() => quoteEnvironment('A-B', 'x'), invalid);
});

test('assertSafeValue refuses NUL, control characters, lone surrogates; names the field', () => {
  assert.throws(() => assertSafeValue('env FOO', 'a\0b'), /env FOO: contains a NUL byte/);
  assert.throws(() => assertSafeValue('arg', 'a\x1bb'), /U\+001B/);
  assert.throws(() => assertSafeValue('arg', 'a\x7f'), invalid);
  assert.throws(() => assertSafeValue('arg', 'a\rb'), /carriage return/);
  assert.throws(() => assertSafeValue('arg', 'a\nb'), /newline/);
  assert.throws(() => assertSafeValue('arg', 'a\uD800b'), /lone surrogate/);
  assertSafeValue('arg', 'a\nb\tc ü 😀', { allowNewline: true });
  assert.throws(() => assertSafeValue('arg', 'a\tb', { allowTab: false }), invalid);
});

test('escapeSpecifiers', () => {
  assert.equal(escapeSpecifiers('100% $x'), '100%% $x');
  assert.throws(() => escapeSpecifiers('x\\'), invalid);
  assert.throws(() => escapeSpecifiers(' x'), invalid);
});

test('quoteNspawnWord round-trips through parseNspawnWords', () => {
  const cases = ['', 'plain', 'a b', `a"b`, `a'b`, `a'b"c`, `'`, `"`, `''""`, 'x\\', '\\', '$X %n %% $$', 'tab\there', '#c', ';s', 'ü', ` lead`, `trail `];
  for (const c of cases) {
    const q = quoteNspawnWord(c);
    assert.deepEqual(parseNspawnWords(q), [c], `${JSON.stringify(c)} → ${q}`);
  }
  assert.deepEqual(parseNspawnWords(cases.map((c) => quoteNspawnWord(c)).join(' ')), cases);
  assert.equal(quoteNspawnWord(`a'b"c`), `'a'"'"'b"c'`);
});

test('quoteNspawnWord refuses newlines: .nspawn has no escape for them', () => {
  assert.throws(() => quoteNspawnWord('foo\nBoot=yes', 'argument 1'), /argument 1: contains a newline/);
});

test('parseNspawnWords: backslash is literal, unterminated quote is an error', () => {
  assert.deepEqual(parseNspawnWords(`/bin/sh -c "a\\nb" 'x'y"z"`), ['/bin/sh', '-c', 'a\\nb', 'xyz']);
  assert.throws(() => parseNspawnWords(`"c\\"d"`), invalid);
});

test('parseNspawnWords splits as a character loop with nspawn\'s rules would (random strings)', () => {
  // the reference: EXTRACT_UNQUOTE|EXTRACT_RETAIN_ESCAPE, one character at a time
  const reference = (value: string): string[] | 'error' => {
    const words: string[] = [];
    let cur: string | undefined;
    let quote = '';
    for (const c of value) {
      if (quote) {
        if (c === quote) quote = '';
        else cur += c;
      } else if (c === "'" || c === '"') {
        quote = c;
        cur ??= '';
      } else if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
        if (cur !== undefined) words.push(cur);
        cur = undefined;
      } else {
        cur = (cur ?? '') + c;
      }
    }
    if (quote) return 'error';
    if (cur !== undefined) words.push(cur);
    return words;
  };
  const alphabet = [' ', '\t', '\n', '\r', "'", '"', '\\', 'a', 'b', 'ü', '\v', '\f', '\u00a0', '='];
  let seed = 7;
  const rand = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) % n);
  for (let i = 0; i < 5000; i++) {
    const s = Array.from({ length: rand(12) }, () => alphabet[rand(alphabet.length)]).join('');
    const want = reference(s);
    if (want === 'error') assert.throws(() => parseNspawnWords(s), invalid, JSON.stringify(s));
    else assert.deepEqual(parseNspawnWords(s), want, JSON.stringify(s));
  }
});

test('escapeNspawnPath escapes colon, backslash, space', () => {
  assert.equal(escapeNspawnPath('/a:b\\c d'), '/a\\:b\\\\c\\ d');
  assert.throws(() => escapeNspawnPath('/a\nb'), invalid);
});
