'use strict';
// extension.js with a stand-in `vscode` module (the real one exists only inside the editor):
// its commands register, and "plan this config.json" shows the daemon's plan in a webview.
const test = require('node:test');
const assert = require('node:assert/strict');
const Module = require('node:module');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { findLoramd } = require('../lib/protocol');

const LORAMD = findLoramd({ cwd: __dirname });
const missing = !fs.existsSync(LORAMD) && 'loramd not built: run `swift build` at the repository root or set LORAMD';

function fakeVscode(answers) {
  const state = { commands: {}, panels: [], errors: [], lines: [] };
  const vscode = {
    window: {
      createOutputChannel: () => ({ appendLine: (l) => state.lines.push(l), append: (t) => state.lines.push(t), show() {}, dispose() {} }),
      showInputBox: async () => answers.shift(),
      showErrorMessage: (m) => state.errors.push(m),
      showInformationMessage() {},
      createWebviewPanel: (id, title) => { const panel = { title, webview: { html: '' } }; state.panels.push(panel); return panel; },
      activeTextEditor: undefined,
    },
    workspace: { workspaceFolders: undefined, getConfiguration: () => ({ get: (key) => ({ path: LORAMD, cap: '20GiB', 'plan.seqLen': 64, 'plan.microBatch': 1, 'plan.loraR': 8, 'plan.baseDtype': 'bf16', 'plan.prune': 0 })[key] }) },
    commands: { registerCommand: (name, fn) => { state.commands[name] = fn; return { dispose() {} }; } },
    ViewColumn: { Beside: 2 },
    ProgressLocation: { Notification: 15 },
  };
  return { vscode, state };
}

test('extension: commands register and planConfig shows the plan', { skip: missing }, async () => {
  const { vscode, state } = fakeVscode(['0.5']);
  const load = Module._load;
  Module._load = function (request, ...rest) { return request === 'vscode' ? vscode : load.call(this, request, ...rest); };
  try {
    const extension = require('../extension');
    const context = { subscriptions: [] };
    extension.activate(context);
    assert.deepEqual(Object.keys(state.commands).sort(), ['loramd.generate', 'loramd.planConfig', 'loramd.train']);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loramd-ext-'));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ architectures: ['LlamaForCausalLM'], hidden_size: 256,
      intermediate_size: 688, num_attention_heads: 8, num_key_value_heads: 4, num_hidden_layers: 8, vocab_size: 1000 }));
    await state.commands['loramd.planConfig']({ fsPath: path.join(dir, 'config.json') });
    assert.deepEqual(state.errors, []);
    assert.equal(state.panels.length, 1);
    assert.match(state.panels[0].webview.html, /<th>fits<\/th><td>yes \(cap 20\.0 GiB\)<\/td>/);
    assert.match(state.panels[0].webview.html, /class="buffer"/);
    await state.commands['loramd.planConfig']({ fsPath: path.join(dir, 'other.json') });
    assert.match(state.errors[0], /config\.json/);
    await extension.deactivate();
    fs.rmSync(dir, { recursive: true, force: true });
  } finally {
    Module._load = load;
  }
});
