'use strict';
// The loramd extension: the only file that talks to the `vscode` API. The protocol lives in
// lib/protocol.js and the plan page in lib/planView.js, both tested with `node --test`.
//
// Commands:
//   loramd.planConfig  on a config.json: memory plan (table + picture) in a webview
//   loramd.train       pick a model directory and a dataset: LoRA training with a progress
//                      notification (cancel stops at a step boundary), adapter saved
//   loramd.generate    pick a model directory, type a prompt: the text streams into "loramd"

const vscode = require('vscode');
const path = require('node:path');
const { LoramdClient, LoramError, parseBytes } = require('./lib/protocol');
const { planHtml, formatBytes } = require('./lib/planView');

let output;
let daemon; // one loramd per window, started on first use

function settings() {
  return vscode.workspace.getConfiguration('loramd');
}

async function getDaemon() {
  if (daemon && !daemon.exited) return daemon;
  const config = settings();
  const initParams = {};
  const cap = config.get('cap');
  if (cap) initParams.hbmCapBytes = parseBytes(cap);
  const folder = vscode.workspace.workspaceFolders && vscode.workspace.workspaceFolders[0];
  daemon = await LoramdClient.start({ command: config.get('path') || undefined, cwd: folder ? folder.uri.fsPath : undefined, initParams });
  daemon.on('log', (p) => output.appendLine(`[loramd] ${p.message}`));
  daemon.on('exit', (code, signal) => output.appendLine(`[loramd exited: ${signal || code}]`));
  output.appendLine(`[loramd ${daemon.initResult.serverInfo.version}: ${daemon.command}, budget ${formatBytes(daemon.initResult.device.hbmCapBytes)}]`);
  return daemon;
}

/** Errors as the CLI prints them, with the hint, in a notification and the output channel. */
function report(error) {
  const text = error instanceof LoramError ? `loramd: ${error.describe()}` : `loramd: ${error.message}`;
  output.appendLine(text);
  vscode.window.showErrorMessage(text.split('\n').join(' — '));
}

function command(body) {
  return async (...args) => {
    try {
      await body(...args);
    } catch (error) {
      report(error);
    }
  };
}

async function pickFolder(title) {
  const picked = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, title });
  return picked && picked[0].fsPath;
}

async function planConfig(uri) {
  const file = uri ? uri.fsPath : vscode.window.activeTextEditor && vscode.window.activeTextEditor.document.fileName;
  if (!file || path.basename(file) !== 'config.json') throw new Error('open or right-click a config.json to plan it');
  const config = settings();
  const client = await getDaemon();
  const prune = await vscode.window.showInputBox({ title: 'Structured pruning ratio (empty: none)', value: String(config.get('plan.prune') || '') });
  if (prune === undefined) return;
  const workload = { kind: 'train', seqLen: config.get('plan.seqLen'), microBatch: config.get('plan.microBatch'),
                     lora: { r: config.get('plan.loraR') }, baseDtype: config.get('plan.baseDtype') };
  if (prune.trim()) workload.prune = { method: 'l2', ratio: Number(prune) };
  const params = { model: { path: file }, workload, search: true, detail: true };
  if (config.get('cap')) params.hbmCapBytes = parseBytes(config.get('cap'));
  const plan = await client.request('memory/plan', params);
  const panel = vscode.window.createWebviewPanel('loramdPlan', `Plan: ${path.basename(path.dirname(file))}`, vscode.ViewColumn.Beside, { enableScripts: false });
  panel.webview.html = planHtml(plan, `${file}: ${plan.fits ? 'fits' : 'does not fit'}`);
}

async function train() {
  const client = await getDaemon();
  const modelDir = await pickFolder('Model directory (config.json, model.safetensors, tokenizer.json)');
  if (!modelDir) return;
  const data = await vscode.window.showOpenDialog({ canSelectMany: false, filters: { 'Datasets': ['jsonl', 'txt'] }, title: 'Training data' });
  if (!data) return;
  const steps = Number(await vscode.window.showInputBox({ title: 'Steps', value: '100' }));
  if (!(steps > 0)) return;
  const config = settings();
  const { modelId } = await client.request('model/load', { path: modelDir });
  const adapter = await client.request('adapter/create', { modelId, r: config.get('train.loraR'), alpha: 2 * config.get('train.loraR'),
    targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] });
  const job = await client.request('train/create', { modelId, adapterId: adapter.adapterId, dataset: { path: data[0].fsPath, format: 'text' },
    seqLen: config.get('train.seqLen'), microBatch: 1, steps, lr: config.get('train.lr') });
  output.appendLine(`training ${adapter.parameters.toLocaleString('en-US')} LoRA parameters, planned peak ${formatBytes(job.plan.peakBytes)}`);
  const result = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: 'loramd: training', cancellable: true },
    (progress, token) => {
      let done = 0;
      const run = client.request('train/run', { jobId: job.jobId }, {
        onProgress: (v) => {
          if (v.kind !== 'report' || !('step' in v)) return;
          progress.report({ increment: v.percentage - done, message: `step ${v.step}/${steps}, loss ${v.loss.toFixed(3)}` });
          done = v.percentage;
        },
      });
      token.onCancellationRequested(() => run.cancel());
      return run;
    });
  const out = path.join(modelDir, `adapter-${job.jobId}`);
  await client.request('adapter/save', { adapterId: adapter.adapterId, path: out });
  output.appendLine(`step ${result.step}, loss ${result.loss.toFixed(4)}; adapter saved in ${out}`);
  vscode.window.showInformationMessage(`loramd: trained ${result.step} steps, loss ${result.loss.toFixed(3)}; adapter in ${out}`);
}

async function generate() {
  const client = await getDaemon();
  const modelDir = await pickFolder('Model directory');
  if (!modelDir) return;
  const prompt = await vscode.window.showInputBox({ title: 'Prompt' });
  if (prompt === undefined) return;
  const loaded = (await client.request('model/list')).models.find((m) => m.path === modelDir);
  const modelId = loaded ? loaded.modelId : (await client.request('model/load', { path: modelDir })).modelId;
  output.show(true);
  output.append(`\n${prompt}`);
  const result = await client.request('generate', { modelId, prompt, maxTokens: settings().get('generate.maxTokens') },
    { onProgress: (v) => v.kind === 'report' && v.text && output.append(v.text) });
  output.appendLine(`\n[${result.finishReason}, ${result.usage.completionTokens} tokens, ${result.timing.decodeTokensPerSecond.toFixed(1)} tok/s]`);
}

function activate(context) {
  output = vscode.window.createOutputChannel('loramd');
  context.subscriptions.push(
    output,
    vscode.commands.registerCommand('loramd.planConfig', command(planConfig)),
    vscode.commands.registerCommand('loramd.train', command(train)),
    vscode.commands.registerCommand('loramd.generate', command(generate)),
    { dispose: () => daemon && daemon.dispose() },
  );
}

function deactivate() {
  return daemon ? daemon.dispose() : undefined;
}

module.exports = { activate, deactivate };
