'use strict';
// Framing as a pure function over bytes: a table of raw inputs and what splitFrame makes of them,
// then the FrameReader fed the same bytes in every possible pair of chunks.
const test = require('node:test');
const assert = require('node:assert/strict');
const { splitFrame, FrameReader, FramingError, encodeFrame, parseBytes } = require('../lib/protocol');

const b = (text) => Buffer.from(text, 'utf8');

test('splitFrame: whole, partial and glued frames', () => {
  const cases = [
    ['Content-Length: 2\r\n\r\n{}', '{}', ''],
    ['Content-Length: 2\r\n\r\n{}Co', '{}', 'Co'],
    ['content-length: 2\r\n\r\n[]', '[]', ''],
    ['Content-Length:2\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n{}', '{}', ''],
    ['X-Other: 1\r\nContent-Length: 0\r\n\r\n', '', ''],
    ['Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}', '{}', ''],
  ];
  for (const [input, body, rest] of cases) {
    const frame = splitFrame(b(input));
    assert.equal(frame.body.toString(), body, input);
    assert.equal(frame.rest.toString(), rest, input);
  }
  for (const partial of ['', 'Content-Len', 'Content-Length: 2\r\n', 'Content-Length: 2\r\n\r\n{']) {
    assert.equal(splitFrame(b(partial)), null, partial);
  }
});

test('splitFrame: the length counts UTF-8 bytes, not characters', () => {
  const frame = encodeFrame({ text: 'héllo 🦙' });
  assert.match(frame.toString('latin1'), /^Content-Length: 22\r\n\r\n/); // JSON.stringify(...).length is 19
  assert.deepEqual(JSON.parse(splitFrame(frame).body.toString('utf8')), { text: 'héllo 🦙' });
  assert.equal(splitFrame(frame.subarray(0, frame.length - 1)), null); // half a llama is not a message
});

test('splitFrame: malformed headers throw with how much to skip', () => {
  for (const bad of ['Content-Length: x\r\n\r\n', 'Content-Length: -1\r\n\r\n', 'Content-Length: 1.5\r\n\r\n',
                     'no colon\r\n\r\n', 'Content-Type: a\r\n\r\n', 'Content-Length: 1\r\nContent-Length: 2\r\n\r\n']) {
    assert.throws(() => splitFrame(b(bad)), (e) => e instanceof FramingError && e.skip === bad.length, bad);
  }
  assert.throws(() => splitFrame(Buffer.alloc(17000, 0x41)), FramingError);
});

test('FrameReader: every split of two messages gives the same two messages', () => {
  const bytes = Buffer.concat([encodeFrame({ id: 1, text: 'ünï' }), encodeFrame({ id: 2, list: [1, 2] })]);
  for (let cut = 0; cut <= bytes.length; cut++) {
    const got = [];
    const errors = [];
    const reader = new FrameReader((m) => got.push(m), (e) => errors.push(e));
    reader.push(bytes.subarray(0, cut));
    reader.push(bytes.subarray(cut));
    assert.deepEqual(got, [{ id: 1, text: 'ünï' }, { id: 2, list: [1, 2] }], `cut at ${cut}`);
    assert.deepEqual(errors, []);
  }
});

test('FrameReader: a bad header or body is reported and the next message still arrives', () => {
  const got = [];
  const errors = [];
  const reader = new FrameReader((m) => got.push(m), (e) => errors.push(e));
  reader.push(Buffer.concat([b('Content-Length: zz\r\n\r\n'), b('Content-Length: 3\r\n\r\n{x}'), encodeFrame({ ok: true })]));
  assert.deepEqual(got, [{ ok: true }]);
  assert.equal(errors.length, 2);
  assert.match(errors[0], /not a non-negative integer/);
  assert.match(errors[1], /not JSON/);
});

test('parseBytes', () => {
  assert.equal(parseBytes('20GiB'), 20 * 2 ** 30);
  assert.equal(parseBytes('24GB'), 24e9);
  assert.equal(parseBytes('1.5GiB'), 1.5 * 2 ** 30);
  assert.equal(parseBytes('512'), 512);
  for (const bad of ['', '0', '-1GiB', '20 parsecs', 'GiB']) assert.throws(() => parseBytes(bad), /not a size/, bad);
});
