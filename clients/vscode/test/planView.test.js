'use strict';
// The plan page from a hand-made plan: rows, escaping, and one rectangle per buffer at its offset.
const test = require('node:test');
const assert = require('node:assert/strict');
const { formatBytes, planSvg, planRows, planHtml } = require('../lib/planView');

const plan = {
  fits: false, peakBytes: 3 << 20, lowerBoundBytes: 3 << 20, capBytes: 2 << 20,
  breakdown: { weights: 2 << 20, adapter: 0, gradients: 0, optimizer: 0, activations: 1 << 20, kvCache: 0, workspace: 0 },
  parameters: { original: 1000000, carrier: 500000 }, reduction: 2,
  suggestion: { changes: { checkpointing: 'layer' }, peakBytes: 2 << 20 },
  buffers: [
    { name: 'weights.<all>', kind: 'weight', bytes: 2 << 20, offset: 0, start: 0, end: 9 },
    { name: 'act & "x"', kind: 'activation', bytes: 1 << 20, offset: 2 << 20, start: 3, end: 5 },
  ],
};

test('formatBytes', () => {
  assert.equal(formatBytes(100), '100 B');
  assert.equal(formatBytes(1536), '1.50 KiB');
  assert.equal(formatBytes(20 * 2 ** 30), '20.0 GiB');
});

test('rows: verdict, peak, non-zero breakdown, suggestion', () => {
  assert.deepEqual(planRows(plan).map((r) => r[0]), ['fits', 'peak', 'parameters', '  weights', '  activations', 'suggestion']);
  assert.equal(planRows(plan)[5][1], 'checkpointing=layer -> peak 2.00 MiB');
  assert.equal(planRows({ ...plan, suggestion: null })[5][1], 'none: no checkpointing, micro-batch, 4-bit or pruning change fits');
});

test('svg: rectangles where the plan put the buffers, names escaped', () => {
  const svg = planSvg(plan, 960, 540);
  const rects = [...svg.matchAll(/<rect class="buffer" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"/g)].map((m) => m.slice(1).map(Number));
  assert.equal(rects.length, 2);
  // plot 700 x 470 px from (90, 30); 10 ops; 3 MiB tall.
  assert.deepEqual(rects[0], [90, 30 + 470 / 3, 700, 470 * 2 / 3].map((v) => Number(v.toFixed(2))));
  assert.deepEqual(rects[1], [90 + 210, 30, 210, 470 / 3].map((v) => Number(v.toFixed(2))));
  assert.match(svg, /act &amp; &quot;x&quot;/);
  assert.throws(() => planSvg({ ...plan, buffers: [] }), /detail: true/);
});

test('html has no script and shows the table', () => {
  const html = planHtml(plan, '<cfg>');
  assert.doesNotMatch(html, /<script/);
  assert.match(html, /<h2>&lt;cfg&gt;<\/h2>/);
  assert.match(html, /<th>fits<\/th><td>NO \(cap 2\.00 MiB\)<\/td>/);
});
