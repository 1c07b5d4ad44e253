'use strict';
// A memory/plan result as a self-contained HTML page (a table and an SVG picture of the arena)
// for a webview. No `vscode` import; the picture matches `loramd plan --svg` and
// loram_client.plots.plan_svg: time across, offset up, one rectangle per buffer coloured by kind.

const KIND_COLOURS = Object.freeze({
  weight: '#8c8c8c',
  adapter: '#e377c2',
  gradient: '#d62728',
  optimizer: '#9467bd',
  activation: '#1f77b4',
  kvCache: '#2ca02c',
  workspace: '#ff7f0e',
});
const BREAKDOWN_KINDS = ['weights', 'adapter', 'gradients', 'optimizer', 'activations', 'kvCache', 'workspace'];

function escapeXml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]);
}

/** "1.50 GiB", "64.0 KiB", "100 B". */
function formatBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  if (unit === 0) return `${n} B`;
  return `${value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)} ${units[unit]}`;
}

/** The arena picture from the plan's `buffers` (request the plan with `detail: true`). */
function planSvg(plan, width = 960, height = 540) {
  const buffers = plan.buffers || [];
  if (!buffers.length) throw new Error('the plan has no buffers: request it with detail: true');
  const left = 90, right = 170, top = 30, bottom = 40;
  const plotW = width - left - right, plotH = height - top - bottom;
  const ops = Math.max(...buffers.map((b) => b.end)) + 1;
  const yMax = Math.max(plan.peakBytes, plan.lowerBoundBytes, 1);
  const x = (op) => left + (plotW * op) / ops;
  const y = (offset) => top + plotH * (1 - offset / yMax);
  const f = (v) => v.toFixed(2);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${left}" y="18" font-size="13">${escapeXml(`${buffers.length} buffers, ${ops} ops: peak ${formatBytes(plan.peakBytes)}, lower bound ${formatBytes(plan.lowerBoundBytes)}`)}</text>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${f(top + plotH)}" stroke="#000000"/>`,
    `<line x1="${left}" y1="${f(top + plotH)}" x2="${f(left + plotW)}" y2="${f(top + plotH)}" stroke="#000000"/>`,
    '<g stroke="#ffffff" stroke-width="0.3">',
  ];
  for (const b of buffers) {
    const x0 = x(b.start), x1 = x(b.end + 1), y0 = y(b.offset + b.bytes);
    const tip = `${b.name} (${b.kind}): ${formatBytes(b.bytes)} at offset ${b.offset}, ops ${b.start}-${b.end}`;
    out.push(`<rect class="buffer" x="${f(x0)}" y="${f(y0)}" width="${f(x1 - x0)}" height="${f(Math.max(y(b.offset) - y0, 0.5))}" fill="${KIND_COLOURS[b.kind] || '#000000'}"><title>${escapeXml(tip)}</title></rect>`);
  }
  out.push('</g>');
  out.push(`<line class="peak" x1="${left}" y1="${f(y(plan.peakBytes))}" x2="${f(left + plotW)}" y2="${f(y(plan.peakBytes))}" stroke="#000000"/>`);
  out.push(`<text x="${f(left + plotW - 4)}" y="${f(y(plan.peakBytes) - 4)}" text-anchor="end" font-size="12">peak ${formatBytes(plan.peakBytes)}</text>`);
  Object.entries(KIND_COLOURS).forEach(([kind, colour], i) => {
    out.push(`<rect x="${f(left + plotW + 20)}" y="${top + 20 * i}" width="14" height="14" fill="${colour}"/>`);
    out.push(`<text x="${f(left + plotW + 40)}" y="${top + 20 * i + 11}">${kind}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

/** Rows of [label, value] summarising the plan: verdict, peak, breakdown, suggestion. */
function planRows(plan) {
  const rows = [
    ['fits', `${plan.fits ? 'yes' : 'NO'} (cap ${formatBytes(plan.capBytes)})`],
    ['peak', `${formatBytes(plan.peakBytes)} (lower bound ${formatBytes(plan.lowerBoundBytes)})`],
    ['parameters', `${plan.parameters.original.toLocaleString('en-US')} original, ${plan.parameters.carrier.toLocaleString('en-US')} carrier (${plan.reduction.toFixed(2)}x fewer)`],
  ];
  for (const kind of BREAKDOWN_KINDS) {
    if (plan.breakdown[kind] > 0) rows.push([`  ${kind}`, formatBytes(plan.breakdown[kind])]);
  }
  if (plan.suggestion) {
    const changes = Object.entries(plan.suggestion.changes).map(([k, v]) => `${k}=${v}`).join(', ');
    rows.push(['suggestion', `${changes} -> peak ${formatBytes(plan.suggestion.peakBytes)}`]);
  } else if ('suggestion' in plan) {
    rows.push(['suggestion', 'none: no checkpointing, micro-batch, 4-bit or pruning change fits']);
  }
  return rows;
}

/** The whole page: title, table, picture (when the plan has buffers). No scripts. */
function planHtml(plan, title = 'Memory plan') {
  const table = planRows(plan)
    .map(([label, value]) => `<tr><th>${escapeXml(label)}</th><td>${escapeXml(value)}</td></tr>`)
    .join('\n');
  const picture = plan.buffers && plan.buffers.length ? planSvg(plan) : '';
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline';">
<title>${escapeXml(title)}</title>
<style>body{font-family:sans-serif} th{text-align:left;white-space:pre;padding-right:1em} .no{color:#d62728}</style></head>
<body><h2>${escapeXml(title)}</h2>
<table class="${plan.fits ? 'yes' : 'no'}">
${table}
</table>
${picture}
</body></html>`;
}

module.exports = { KIND_COLOURS, formatBytes, planSvg, planRows, planHtml, escapeXml };
