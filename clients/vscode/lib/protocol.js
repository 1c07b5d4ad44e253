'use strict';
// The loramd protocol for the editor: LSP base-protocol framing and a JSON-RPC 2.0 client over a
// child process. No `vscode` import, so `node --test` drives it against the real daemon.
//
//   const client = await LoramdClient.start({ command: '/path/to/loramd' });
//   const plan = await client.request('memory/plan', { model: { preset: 'llama-3.1-70b' }, workload });
//   await client.request('generate', params, { onProgress: (v) => out.append(v.text || '') });
//   await client.shutdown();

const { spawn } = require('node:child_process');
const { EventEmitter } = require('node:events');
const fs = require('node:fs');
const path = require('node:path');

const MAX_HEADER_BYTES = 16 * 1024;
const HEADER_END = Buffer.from('\r\n\r\n', 'ascii');

/** The contract's error codes (docs/rpc.md, Errors). */
const ErrorCodes = Object.freeze({
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  ServerNotInitialized: -32002,
  RequestCancelled: -32800,
  NotFound: -31001,
  FormatError: -31010,
  ShapeMismatch: -31011,
  OverBudget: -31020,
  IOError: -31030,
});
const CODE_NAMES = Object.fromEntries(Object.entries(ErrorCodes).map(([name, code]) => [code, name]));

/** A malformed frame header; `skip` is how many bytes to drop to resynchronise. */
class FramingError extends Error {
  constructor(message, skip) {
    super(message);
    this.name = 'FramingError';
    this.skip = skip;
  }
}

/** An error response from the daemon: `code`, `message`, `data`, and the contract's `hint`
 * (one sentence a person can act on) and, for InvalidParams, `field`. */
class LoramError extends Error {
  constructor(error, method) {
    const data = error && typeof error.data === 'object' && error.data !== null && !Array.isArray(error.data) ? error.data : {};
    super(String(error && error.message));
    this.name = CODE_NAMES[error && error.code] || 'LoramError';
    this.code = error && error.code;
    this.data = data;
    this.hint = typeof data.hint === 'string' ? data.hint : undefined;
    this.field = typeof data.field === 'string' ? data.field : undefined;
    this.method = method;
  }

  /** "message (code N)\nhint: ..." as the `loram` CLI prints it. */
  describe() {
    return `${this.message} (code ${this.code})` + (this.hint ? `\nhint: ${this.hint}` : '');
  }
}

/** The daemon exited; every pending request fails with this. */
class DaemonExited extends Error {
  constructor(exitCode, signal, stderrLines) {
    const tail = stderrLines.length ? `; last stderr lines:\n  ${stderrLines.join('\n  ')}` : '';
    super(`loramd exited (${signal ? `signal ${signal}` : `code ${exitCode}`})${tail}`);
    this.name = 'DaemonExited';
    this.exitCode = exitCode;
    this.signal = signal;
    this.stderrLines = stderrLines;
  }
}

/** A request had no answer in time; it was cancelled on the daemon. */
class RequestTimeout extends Error {
  constructor(method, id, timeoutMs) {
    super(`${method} (id ${id}) had no answer within ${timeoutMs} ms`);
    this.name = 'RequestTimeout';
    this.method = method;
    this.id = id;
  }
}

/** One message as bytes: `Content-Length: N\r\n\r\n` and N bytes of UTF-8 JSON. */
function encodeFrame(message) {
  const body = Buffer.from(JSON.stringify(message), 'utf8');
  return Buffer.concat([Buffer.from(`Content-Length: ${body.length}\r\n\r\n`, 'ascii'), body]);
}

/**
 * Split one message off the front of `buffer`: `{ body, rest }` (both Buffers), or null when
 * more bytes are needed. Header names are case-insensitive and headers other than
 * Content-Length are ignored. Throws FramingError for a malformed header.
 */
function splitFrame(buffer) {
  const end = buffer.indexOf(HEADER_END);
  if (end < 0) {
    if (buffer.length > MAX_HEADER_BYTES) throw new FramingError('header block over 16 KiB without a blank line', buffer.length);
    return null;
  }
  const skip = end + HEADER_END.length;
  let length = null;
  for (const line of buffer.subarray(0, end).toString('latin1').split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) throw new FramingError(`header line without ':': ${JSON.stringify(line)}`, skip);
    if (line.slice(0, colon).trim().toLowerCase() !== 'content-length') continue;
    const value = line.slice(colon + 1).trim();
    if (!/^[0-9]+$/.test(value)) throw new FramingError(`Content-Length is not a non-negative integer: ${JSON.stringify(value)}`, skip);
    const n = Number(value);
    if (length !== null && length !== n) throw new FramingError('two different Content-Length values', skip);
    length = n;
  }
  if (length === null) throw new FramingError('no Content-Length header', skip);
  if (buffer.length < skip + length) return null;
  return { body: buffer.subarray(skip, skip + length), rest: buffer.subarray(skip + length) };
}

/** Feeds chunks in, calls `onMessage(parsed)` per whole message and `onError(text)` per bad one. */
class FrameReader {
  constructor(onMessage, onError) {
    this.buffer = Buffer.alloc(0);
    this.onMessage = onMessage;
    this.onError = onError;
  }

  push(chunk) {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    for (;;) {
      let frame;
      try {
        frame = splitFrame(this.buffer);
      } catch (error) {
        if (!(error instanceof FramingError)) throw error;
        this.onError(error.message);
        this.buffer = this.buffer.subarray(error.skip);
        continue;
      }
      if (frame === null) return;
      this.buffer = frame.rest;
      let message;
      try {
        message = JSON.parse(frame.body.toString('utf8'));
      } catch (error) {
        this.onError(`body is not JSON: ${error.message}`);
        continue;
      }
      this.onMessage(message);
    }
  }
}

/** "20GiB" -> 21474836480; also 24GB, 512MiB, 1.5GiB and plain bytes. Throws on anything else. */
function parseBytes(text) {
  const units = { '': 1, B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30, TIB: 2 ** 40 };
  const match = /^\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*$/.exec(String(text));
  const scale = match && units[match[2].toUpperCase()];
  const value = scale ? Math.floor(Number(match[1]) * scale) : 0;
  if (!(value > 0)) throw new Error(`${JSON.stringify(text)} is not a size (bytes, or a number with KB MB GB TB KiB MiB GiB TiB)`);
  return value;
}

/** The daemon to run: `configured`, else $LORAMD, else the nearest `.build/{debug,release}/loramd`
 * at or above `cwd`, else `loramd` on PATH. */
function findLoramd({ configured, env = process.env, cwd = process.cwd() } = {}) {
  if (configured) return configured;
  if (env.LORAMD) return env.LORAMD;
  for (let dir = path.resolve(cwd); ; dir = path.dirname(dir)) {
    for (const kind of ['debug', 'release']) {
      const candidate = path.join(dir, '.build', kind, 'loramd');
      if (fs.existsSync(candidate)) return candidate;
    }
    if (path.dirname(dir) === dir) return 'loramd';
  }
}

let tokenCounter = 0;

/**
 * A running loramd and the JSON-RPC session with it. Events: 'notification' (method, params),
 * 'log' (params of window/logMessage), 'exit' (code, signal).
 */
class LoramdClient extends EventEmitter {
  constructor({ command, args = [], cwd, env } = {}) {
    super();
    this.command = findLoramd({ configured: command, env: env || process.env, cwd });
    this.nextId = 1;
    this.pending = new Map(); // id -> { resolve, reject, method, token }
    this.progress = new Map(); // token -> callback
    this.stderrLines = [];
    this.protocolErrors = [];
    this.exited = null;
    this.initResult = null;
    this.process = spawn(this.command, args, { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.exitPromise = new Promise((resolve) => {
      this.process.on('error', (error) => this.onExit(null, null, `cannot run ${this.command}: ${error.message}`, resolve));
      this.process.on('exit', (code, signal) => this.onExit(code, signal, null, resolve));
    });
    this.process.stdin.on('error', () => {}); // a write after the daemon died: the exit handler reports it
    const reader = new FrameReader((m) => this.onMessage(m), (text) => this.protocolErrors.push(text));
    this.process.stdout.on('data', (chunk) => reader.push(chunk));
    let partial = '';
    this.process.stderr.on('data', (chunk) => {
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop();
      this.stderrLines.push(...lines);
      if (this.stderrLines.length > 50) this.stderrLines.splice(0, this.stderrLines.length - 50);
    });
  }

  /** Spawn the daemon and send `initialize` (+ `initialized`); rejects if either fails. */
  static async start(options = {}) {
    const client = new LoramdClient(options);
    try {
      await client.initialize(options.initParams || {});
    } catch (error) {
      client.kill();
      throw error;
    }
    return client;
  }

  async initialize(params = {}) {
    const result = await this.request('initialize', { processId: process.pid, clientInfo: { name: 'loramd-vscode' }, ...params });
    this.initResult = result;
    this.notify('initialized', {});
    return result;
  }

  /** Whether the daemon serves `method` (initialize's capabilities.methods). */
  hasMethod(method) {
    return Boolean(this.initResult && this.initResult.capabilities.methods.includes(method));
  }

  /**
   * Send a request. Options: `onProgress(value)` gets each `$/progress` value (a workDoneToken is
   * added to the params), `timeoutMs` cancels it on the daemon and rejects with RequestTimeout,
   * `signal` (an AbortSignal) cancels it. Returns a promise with `id` and `cancel()`.
   */
  request(method, params, { onProgress, timeoutMs, signal } = {}) {
    const id = this.nextId++;
    let token;
    if (onProgress) {
      token = `loramd-vscode-${process.pid}-${++tokenCounter}`;
      params = { ...(params || {}), workDoneToken: token };
      this.progress.set(token, onProgress);
    }
    const promise = new Promise((resolve, reject) => {
      if (this.exited) {
        reject(this.exited);
        return;
      }
      const entry = { resolve, reject, method, token, timer: null };
      this.pending.set(id, entry);
      if (timeoutMs !== undefined) {
        entry.timer = setTimeout(() => {
          this.cancel(id);
          this.settle(id, () => reject(new RequestTimeout(method, id, timeoutMs)));
        }, timeoutMs);
      }
      if (signal) {
        if (signal.aborted) this.cancel(id);
        else signal.addEventListener('abort', () => this.cancel(id), { once: true });
      }
      const message = { jsonrpc: '2.0', id, method };
      if (params !== undefined && params !== null) message.params = params;
      this.write(message);
    });
    promise.id = id;
    promise.cancel = () => this.cancel(id);
    return promise;
  }

  notify(method, params) {
    const message = { jsonrpc: '2.0', method };
    if (params !== undefined && params !== null) message.params = params;
    this.write(message);
  }

  /** `$/cancelRequest`: the request ends with RequestCancelled at its next safe point. */
  cancel(id) {
    if (this.pending.has(id)) this.notify('$/cancelRequest', { id });
  }

  /** Write bytes as given (tests use it for framing edge cases). */
  writeRaw(bytes) {
    if (!this.exited) this.process.stdin.write(bytes);
  }

  write(message) {
    this.writeRaw(encodeFrame(message));
  }

  /** `shutdown` then `exit`; resolves with the daemon's exit code. */
  async shutdown(timeoutMs = 10000) {
    await this.request('shutdown', null, { timeoutMs });
    this.notify('exit');
    this.process.stdin.end();
    return this.waitForExit(timeoutMs);
  }

  /** Resolves with the exit code once the process is gone; kills it after `timeoutMs`. */
  async waitForExit(timeoutMs = 10000) {
    let timer;
    const killer = new Promise((resolve) => {
      timer = setTimeout(() => {
        this.kill();
        resolve();
      }, timeoutMs);
    });
    await Promise.race([this.exitPromise, killer]);
    clearTimeout(timer);
    await this.exitPromise;
    return this.exited.exitCode;
  }

  kill() {
    if (!this.exited) this.process.kill('SIGKILL');
  }

  /** Stop the daemon however it is doing: shutdown + exit if it answers, else kill. */
  async dispose() {
    if (this.exited) return this.exited.exitCode;
    try {
      return await this.shutdown(5000);
    } catch {
      this.kill();
      await this.exitPromise;
      return this.exited.exitCode;
    }
  }

  settle(id, complete) {
    const entry = this.pending.get(id);
    if (!entry) return;
    this.pending.delete(id);
    if (entry.timer) clearTimeout(entry.timer);
    if (entry.token !== undefined) this.progress.delete(entry.token);
    complete(entry);
  }

  onMessage(message) {
    if (Array.isArray(message) || typeof message !== 'object' || message === null) {
      this.protocolErrors.push(`unexpected message ${JSON.stringify(message)}`);
      return;
    }
    if (typeof message.method === 'string') {
      if (message.method === '$/progress' && message.params) {
        const callback = this.progress.get(message.params.token);
        if (callback) callback(message.params.value || {});
      }
      if (message.method === 'window/logMessage') this.emit('log', message.params);
      this.emit('notification', message.method, message.params);
      return;
    }
    this.settle(message.id, (entry) => {
      if ('error' in message) entry.reject(new LoramError(message.error, entry.method));
      else entry.resolve(message.result);
    });
  }

  onExit(code, signal, reason, resolve) {
    if (this.exited) return;
    const stderr = this.stderrLines.slice(-20);
    this.exited = new DaemonExited(code, signal, reason ? [reason, ...stderr] : stderr);
    for (const id of [...this.pending.keys()]) this.settle(id, (entry) => entry.reject(this.exited));
    this.emit('exit', code, signal);
    resolve();
  }
}

module.exports = {
  ErrorCodes,
  FramingError,
  LoramError,
  DaemonExited,
  RequestTimeout,
  encodeFrame,
  splitFrame,
  FrameReader,
  parseBytes,
  findLoramd,
  LoramdClient,
};
