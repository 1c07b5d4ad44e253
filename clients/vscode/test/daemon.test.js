'use strict';
// lib/protocol.js against the real loramd ($LORAMD, else the checkout's .build): lifecycle,
// memory/plan, typed errors with code and hint, cancellation, progress and streamed generation.
const test = require('node:test');
const { after } = test;
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { LoramdClient, LoramError, DaemonExited, RequestTimeout, ErrorCodes, encodeFrame, findLoramd } = require('../lib/protocol');
const { planHtml } = require('../lib/planView');

const LORAMD = findLoramd({ cwd: __dirname });
const missing = !fs.existsSync(LORAMD) && 'loramd not built: run `swift build` at the repository root or set LORAMD';

async function withClient(options, body) {
  const client = await LoramdClient.start({ command: LORAMD, ...options });
  try {
    await body(client);
    assert.deepEqual(client.protocolErrors, []);
  } finally {
    await client.dispose();
  }
}

let tinyModel;
function tiny() {
  if (!tinyModel) {
    tinyModel = fs.mkdtempSync(path.join(os.tmpdir(), 'loramd-vscode-'));
    execFileSync(LORAMD, ['make-model', '--preset', 'tiny', '--out', tinyModel]);
  }
  return tinyModel;
}
after(() => tinyModel && fs.rmSync(tinyModel, { recursive: true, force: true }));

test('lifecycle: initialize describes the daemon; shutdown + exit gives code 0', { skip: missing }, async () => {
  const client = await LoramdClient.start({ command: LORAMD, initParams: { hbmCapBytes: 1 << 30 } });
  assert.equal(client.initResult.serverInfo.name, 'loramd');
  assert.equal(client.initResult.device.hbmCapBytes, 1 << 30);
  assert.ok(client.hasMethod('memory/plan') && !client.hasMethod('no/such'));
  assert.equal(await client.shutdown(), 0);
  await assert.rejects(client.request('model/list'), DaemonExited);
});

test('lifecycle: exit without shutdown is code 1; a killed daemon fails pending requests', { skip: missing }, async () => {
  const a = await LoramdClient.start({ command: LORAMD });
  a.notify('exit');
  assert.equal(await a.waitForExit(), 1);
  const b = await LoramdClient.start({ command: LORAMD, args: ['--debug-methods'] });
  const sleeping = b.request('debug/sleep', { ms: 60000 });
  b.kill();
  await assert.rejects(sleeping, (e) => e instanceof DaemonExited && e.signal === 'SIGKILL');
});

test('framing edge cases reach the real daemon intact', { skip: missing }, async () => {
  await withClient({ args: ['--debug-methods'] }, async (client) => {
    const params = { text: 'héllo ✓ 🦙 "quoted" \u0000', big: 'x'.repeat(100000) };
    assert.deepEqual(await client.request('debug/echo', params), params);
    // One request written a byte at a time, then two glued into one write.
    const answers = [];
    client.on('notification', () => {});
    const frame = encodeFrame({ jsonrpc: '2.0', id: 'raw-1', method: 'debug/echo', params: { n: 1 } });
    const original = client.settle.bind(client);
    client.settle = (id, complete) => (String(id).startsWith('raw') ? answers.push(id) : original(id, complete));
    for (const byte of frame) client.writeRaw(Buffer.from([byte]));
    client.writeRaw(Buffer.concat([encodeFrame({ jsonrpc: '2.0', id: 'raw-2', method: 'model/list' }),
                                   encodeFrame({ jsonrpc: '2.0', id: 'raw-3', method: 'model/list' })]));
    await client.request('model/list'); // answered after the raw ones were read
    for (let i = 0; answers.length < 3 && i < 100; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(answers.sort(), ['raw-1', 'raw-2', 'raw-3']);
  });
});

test('memory/plan: the dry run and its page', { skip: missing }, async () => {
  await withClient({}, async (client) => {
    const plan = await client.request('memory/plan', {
      model: { preset: 'llama-3.1-70b' }, hbmCapBytes: 18 * 2 ** 30, search: true, detail: true,
      workload: { kind: 'train', seqLen: 512, lora: { r: 8 }, baseDtype: 'nf4', prune: { method: 'l2', ratio: 0.85 } },
    });
    assert.equal(plan.fits, false);
    assert.equal(plan.parameters.original, 70553706496);
    assert.deepEqual(plan.suggestion.changes, { checkpointing: 'layer' });
    const html = planHtml(plan, 'llama-3.1-70b');
    assert.match(html, /<th>fits<\/th><td>NO \(cap 18\.0 GiB\)<\/td>/);
    assert.match(html, /checkpointing=layer -&gt; peak 14\.0 GiB/);
    assert.equal((html.match(/class="buffer"/g) || []).length, plan.buffers.length);
  });
});

test('errors carry code, hint and field', { skip: missing }, async () => {
  await withClient({}, async (client) => {
    await assert.rejects(client.request('no/such/method', {}), (e) =>
      e instanceof LoramError && e.code === ErrorCodes.MethodNotFound && e.name === 'MethodNotFound' && e.hint.length > 0);
    await assert.rejects(client.request('model/load', { path: '/no/such/dir' }), (e) =>
      e.code === ErrorCodes.NotFound && /\(code -31001\)\nhint: \S/.test(e.describe()));
    await assert.rejects(client.request('memory/plan', { model: { preset: 'llama-2-7b' }, workload: { kind: 'x', seqLen: 1 } }), (e) =>
      e.code === ErrorCodes.InvalidParams && e.field === 'workload.kind' && e.hint.length > 0);
    // Nothing was loaded by the failures.
    assert.deepEqual((await client.request('model/list')).models, []);
  });
});

test('cancellation and timeouts end requests on the daemon', { skip: missing }, async () => {
  await withClient({ args: ['--debug-methods'] }, async (client) => {
    const started = Date.now();
    const sleeping = client.request('debug/sleep', { ms: 60000 });
    setTimeout(() => sleeping.cancel(), 100);
    await assert.rejects(sleeping, (e) => e.code === ErrorCodes.RequestCancelled);
    const controller = new AbortController();
    const aborted = client.request('debug/sleep', { ms: 60000 }, { signal: controller.signal });
    controller.abort();
    await assert.rejects(aborted, (e) => e.code === ErrorCodes.RequestCancelled);
    await assert.rejects(client.request('debug/sleep', { ms: 60000 }, { timeoutMs: 100 }), RequestTimeout);
    assert.ok(Date.now() - started < 30000); // well before one 60 s sleep ends: a hang bound, not speed
    assert.deepEqual(await client.request('debug/echo', { still: 'serving' }), { still: 'serving' });
  });
});

test('progress: begin, reports with percentage, end before the answer', { skip: missing }, async () => {
  await withClient({ args: ['--debug-methods'] }, async (client) => {
    const values = [];
    const result = await client.request('debug/sleep', { ms: 700 }, { onProgress: (v) => values.push(v) });
    assert.deepEqual(result, { sleptMs: 700 });
    assert.equal(values[0].kind, 'begin');
    assert.equal(values.at(-1).kind, 'end');
    assert.ok(values.some((v) => v.kind === 'report' && typeof v.percentage === 'number'));
  });
});

test('generate streams its text as progress and the pieces make the result', { skip: missing }, async () => {
  await withClient({}, async (client) => {
    const { modelId } = await client.request('model/load', { path: tiny() });
    const pieces = [];
    const result = await client.request('generate', { modelId, prompt: 'The cat', maxTokens: 24, temperature: 0 },
      { onProgress: (v) => v.kind === 'report' && v.text && pieces.push(v.text) });
    assert.ok(pieces.length >= 1);
    assert.equal(pieces.join(''), result.text);
    // Cancelled mid-stream: RequestCancelled with the partial text so far.
    const streamed = [];
    const long = client.request('generate', { modelId, prompt: 'Once', maxTokens: 200000, temperature: 0.8 },
      { onProgress: (v) => { if (v.text) { streamed.push(v.text); long.cancel(); } } });
    await assert.rejects(long, (e) => e.code === ErrorCodes.RequestCancelled && e.data.partial.finishReason === 'cancelled'
      && e.data.partial.text.startsWith(streamed.join('')));
  });
});

test('training reports step and loss; train/run is cancellable at a step boundary', { skip: missing }, async () => {
  const data = path.join(tiny(), 'train.jsonl');
  fs.writeFileSync(data, ['The cat sat on the mat.', 'A journey of a thousand miles.'].map((t) => JSON.stringify({ text: t })).join('\n') + '\n');
  await withClient({}, async (client) => {
    const { modelId } = await client.request('model/load', { path: tiny() });
    const { adapterId } = await client.request('adapter/create', { modelId, r: 2, alpha: 4, targets: ['q_proj', 'v_proj'] });
    const job = await client.request('train/create', { modelId, adapterId, dataset: { path: data, format: 'text' }, seqLen: 16, microBatch: 1, steps: 4, lr: 0.01 });
    const reports = [];
    const run = await client.request('train/run', { jobId: job.jobId }, { onProgress: (v) => v.kind === 'report' && reports.push(v) });
    assert.equal(run.step, 4);
    const steps = reports.filter((r) => 'step' in r);
    assert.ok(steps.length >= 1, JSON.stringify(reports));
    assert.ok(steps.every((r) => typeof r.loss === 'number' && r.step >= 1 && r.step <= 4), JSON.stringify(steps));
    const endless = await client.request('train/create', { modelId, adapterId, dataset: { path: data, format: 'text' }, seqLen: 16, microBatch: 1, steps: 1000000, lr: 0.01 });
    const running = client.request('train/run', { jobId: endless.jobId }, { onProgress: (v) => 'step' in v && running.cancel() });
    await assert.rejects(running, (e) => e.code === ErrorCodes.RequestCancelled && e.data.partial.step >= 1);
  });
});
