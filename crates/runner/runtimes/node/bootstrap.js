'use strict';
// HotSwap built-in Node.js runtime: an AWS Lambda Runtime API client.
//
// Launched as `node bootstrap.js` with AWS_LAMBDA_RUNTIME_API, _HANDLER
// (`file.export`, file may sit in a subdirectory: `src/index.handler`) and
// LAMBDA_TASK_ROOT set. Built-in modules only. Handlers may be async
// (promise), callback-style (length >= 3) or plain synchronous functions;
// CommonJS (.js/.cjs/extensionless) and ES modules (.mjs, or .js under a
// package.json with "type": "module") are supported.

const http = require('http');
const fs = require('fs');
const path = require('path');

const API_PREFIX = '/2018-06-01/runtime';

class RuntimeError extends Error {
  constructor(type, message) {
    super(message);
    this.name = type;
  }
}

// ---------------------------------------------------------------------------
// Runtime API client: one keep-alive connection (free sockets are unref'd by
// the agent, so an idle connection never keeps the event loop alive).

function parseHostPort(value) {
  const m = /^(?:http:\/\/)?(\[[^\]]+\]|[^:/]+):(\d+)\/?$/.exec(value || '');
  if (!m) throw new Error(`AWS_LAMBDA_RUNTIME_API must be host:port, got ${JSON.stringify(value)}`);
  return { host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

const target = (() => {
  try {
    return parseHostPort(process.env.AWS_LAMBDA_RUNTIME_API);
  } catch (e) {
    process.stderr.write(`bootstrap: ${e.message}\n`);
    process.exit(2);
  }
})();
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
// The platform's own endpoint as a Unix socket (the isolated sandbox offers
// it): one hop fewer than its loopback relay. TCP when it cannot be reached.
let socketPath = process.env._HOTSWAP_RUNTIME_API_SOCKET || null;

function requestOnce(method, urlPath, body, headers) {
  return new Promise((resolve, reject) => {
    const where = socketPath ? { socketPath } : { host: target.host, port: target.port };
    const req = http.request(
      { ...where, method, path: urlPath, agent, headers },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', (err) => {
      err.reusedSocket = req.reusedSocket;
      reject(err);
    });
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

async function request(method, urlPath, body, headers = {}) {
  if (body !== undefined) headers['Content-Length'] = Buffer.byteLength(body);
  try {
    return await requestOnce(method, urlPath, body, headers);
  } catch (err) {
    if (socketPath && err.syscall === 'connect') {
      socketPath = null;
      return request(method, urlPath, body, headers);
    }
    // The server may close an idle keep-alive connection: retry once.
    if (err.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) {
      return requestOnce(method, urlPath, body, headers);
    }
    throw err;
  }
}

function headerValue(text) {
  const cleaned = String(text).replace(/[^\x20-\x7e]/g, '').slice(0, 200);
  return cleaned || 'Unhandled';
}

async function postJson(urlPath, body, errorType) {
  const headers = { 'Content-Type': 'application/json' };
  if (errorType !== undefined) headers['Lambda-Runtime-Function-Error-Type'] = headerValue(errorType);
  const res = await request('POST', urlPath, body, headers);
  if (res.status < 200 || res.status >= 300) {
    process.stderr.write(`bootstrap: POST ${urlPath} returned ${res.status}: ${res.body.toString('utf8', 0, 500)}\n`);
  }
  return res;
}

// ---------------------------------------------------------------------------
// Errors

function errorPayload(err, requestId) {
  let errorType = 'Error';
  let errorMessage;
  let stack = [];
  if (err !== null && typeof err === 'object') {
    if (typeof err.name === 'string' && err.name) errorType = err.name;
    errorMessage = typeof err.message === 'string' ? err.message : safeString(err);
    if (typeof err.stack === 'string') stack = err.stack.split('\n').filter((l) => !isOwnFrame(l));
  } else {
    errorMessage = safeString(err);
  }
  const payload = { errorMessage, errorType, stackTrace: stack };
  if (requestId !== undefined) payload.requestId = requestId;
  return payload;
}

// Frames of this file say nothing about the function's code.
function isOwnFrame(line) {
  return /^\s+at /.test(line) && (line.includes(`(${__filename}:`) || line.includes(` ${__filename}:`));
}

function safeString(value) {
  try {
    return String(value);
  } catch (_) {
    return Object.prototype.toString.call(value);
  }
}

function logError(payload) {
  const stack = (payload.stackTrace || []).join('\n');
  if (stack && stack.includes(payload.errorMessage)) {
    process.stderr.write(`[ERROR] ${payload.errorType}\n${stack}\n`);
  } else {
    process.stderr.write(`[ERROR] ${payload.errorType}: ${payload.errorMessage}${stack ? `\n${stack}` : ''}\n`);
  }
}

// ---------------------------------------------------------------------------
// Loading the handler

function isFile(p) {
  try {
    return fs.statSync(p).isFile();
  } catch (_) {
    return false;
  }
}

function packageTypeIsModule(file) {
  let dir = path.dirname(file);
  for (;;) {
    const pj = path.join(dir, 'package.json');
    if (isFile(pj)) {
      try {
        return JSON.parse(fs.readFileSync(pj, 'utf8')).type === 'module';
      } catch (_) {
        return false;
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) return false;
    dir = parent;
  }
}

async function importFile(file) {
  const { pathToFileURL } = require('url');
  return import(pathToFileURL(file).href);
}

async function loadModule(taskRoot, moduleRoot, moduleName) {
  const base = path.resolve(taskRoot, moduleRoot, moduleName);
  if (isFile(base)) return require(base);
  if (isFile(`${base}.js`)) {
    return packageTypeIsModule(`${base}.js`) ? importFile(`${base}.js`) : require(`${base}.js`);
  }
  if (isFile(`${base}.mjs`)) return importFile(`${base}.mjs`);
  if (isFile(`${base}.cjs`)) return require(`${base}.cjs`);
  // A directory with an index file or package.json "main", or a package
  // from node_modules / NODE_PATH.
  let resolved;
  try {
    resolved = require.resolve(base);
  } catch (_) {
    try {
      resolved = require.resolve(moduleName, { paths: [path.resolve(taskRoot, moduleRoot), taskRoot] });
    } catch (_) {
      // fall through
    }
  }
  if (resolved === undefined) {
    const err = new Error(`Cannot find module '${moduleName}' (looked for ${base}{,.js,.mjs,.cjs})`);
    err.code = 'MODULE_NOT_FOUND';
    throw err;
  }
  return resolved.endsWith('.mjs') ? importFile(resolved) : require(resolved);
}

function setupNodePath() {
  const layers = ['/opt/nodejs/node20/node_modules', '/opt/nodejs/node_modules'].filter((d) => {
    try {
      return fs.statSync(d).isDirectory();
    } catch (_) {
      return false;
    }
  });
  if (layers.length === 0) return;
  const existing = process.env.NODE_PATH ? process.env.NODE_PATH.split(path.delimiter) : [];
  process.env.NODE_PATH = existing.concat(layers.filter((l) => !existing.includes(l))).join(path.delimiter);
  try {
    require('module').Module._initPaths();
  } catch (_) {
    // best effort: only affects require() of layer packages
  }
}

async function loadHandler(spec, taskRoot) {
  const m = /^([^.]*)\.(.*)$/.exec(path.basename(spec || ''));
  if (!m || !m[1] || !m[2]) {
    throw new RuntimeError('Runtime.MalformedHandlerName', `Bad handler '${spec}': expected file.export`);
  }
  const moduleRoot = path.dirname(spec);
  const [, moduleName, exportPath] = m;
  let mod;
  try {
    mod = await loadModule(taskRoot, moduleRoot, moduleName);
  } catch (err) {
    if (err instanceof SyntaxError) {
      const e = new RuntimeError('Runtime.UserCodeSyntaxError', safeString(err));
      e.stack = err.stack;
      throw e;
    }
    if (err && (err.code === 'MODULE_NOT_FOUND' || err.code === 'ERR_MODULE_NOT_FOUND')) {
      const e = new RuntimeError('Runtime.ImportModuleError', safeString(err));
      e.stack = err.stack;
      throw e;
    }
    throw err;
  }
  let fn = mod;
  for (const key of exportPath.split('.')) {
    fn = fn === null || fn === undefined ? undefined : fn[key];
  }
  if (fn === undefined && mod && mod.default && typeof mod.default === 'object' && exportPath in mod.default) {
    fn = mod.default[exportPath]; // ESM namespace of a CommonJS-style default export
  }
  if (fn === undefined) {
    throw new RuntimeError('Runtime.HandlerNotFound', `${spec} is undefined or not exported`);
  }
  if (typeof fn !== 'function') {
    throw new RuntimeError('Runtime.HandlerNotFound', `${spec} is not a function`);
  }
  return fn;
}

// ---------------------------------------------------------------------------
// Invocations

const env = process.env;
const staticContext = {
  functionName: env.AWS_LAMBDA_FUNCTION_NAME,
  functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
  memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
  logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
  logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
};

function parseJsonHeader(value) {
  if (!value) return undefined;
  try {
    const v = JSON.parse(value);
    return v !== null && typeof v === 'object' ? v : undefined;
  } catch (_) {
    return undefined;
  }
}

// The invocation in flight, if any: { id, finish(isError, value) }.
let current = null;

function runHandler(handler, event, context) {
  return new Promise((resolve) => {
    let done = false;
    const finish = (isError, value) => {
      if (done) return;
      done = true;
      if (current && current.finish === finish) current = null;
      resolve({ isError, value });
    };
    current = { id: context.awsRequestId, finish };
    const callback = (err, result) => {
      if (err !== undefined && err !== null) finish(true, err);
      else finish(false, result);
    };
    context.done = callback;
    context.succeed = (result) => finish(false, result);
    context.fail = (err) => finish(true, err === undefined || err === null ? 'handled' : err);
    let ret;
    try {
      ret = handler(event, context, callback);
    } catch (err) {
      finish(true, err);
      return;
    }
    if (ret !== null && (typeof ret === 'object' || typeof ret === 'function') && typeof ret.then === 'function') {
      Promise.resolve(ret).then(
        (result) => finish(false, result),
        (err) => finish(true, err === undefined || err === null ? new Error(`Promise rejected with ${err}`) : err),
      );
    } else if (handler.length < 3) {
      finish(false, ret);
    }
    // Otherwise: callback style, wait for callback / context.done (or for
    // the event loop to drain, see 'beforeExit' below).
  });
}

async function report(urlBase, payload) {
  logError(payload);
  try {
    await postJson(`${urlBase}/error`, JSON.stringify(payload), payload.errorType);
  } catch (err) {
    process.stderr.write(`bootstrap: POST error failed: ${err && err.message}\n`);
  }
}

async function invokeLoop(handler) {
  for (;;) {
    let inv;
    try {
      inv = await request('GET', `${API_PREFIX}/invocation/next`);
    } catch (err) {
      process.stderr.write(`bootstrap: GET next failed: ${err && err.message}\n`);
      process.exit(1);
    }
    if (inv.status !== 200) {
      process.stderr.write(`bootstrap: GET next returned ${inv.status}: ${inv.body.toString('utf8', 0, 500)}\n`);
      process.exit(1);
    }
    const h = inv.headers;
    const id = h['lambda-runtime-aws-request-id'] || '';
    const urlBase = `${API_PREFIX}/invocation/${encodeURIComponent(id)}`;
    if (h['lambda-runtime-trace-id']) env._X_AMZN_TRACE_ID = h['lambda-runtime-trace-id'];
    else delete env._X_AMZN_TRACE_ID;
    const deadline = Number(h['lambda-runtime-deadline-ms']) || 0;
    let waitsForEmptyLoop = true;
    const context = {
      ...staticContext,
      invokedFunctionArn: h['lambda-runtime-invoked-function-arn'],
      awsRequestId: id,
      clientContext: parseJsonHeader(h['lambda-runtime-client-context']),
      identity: parseJsonHeader(h['lambda-runtime-cognito-identity']),
      getRemainingTimeInMillis: () => Math.max(deadline - Date.now(), 0),
      get callbackWaitsForEmptyEventLoop() {
        return waitsForEmptyLoop;
      },
      set callbackWaitsForEmptyEventLoop(v) {
        waitsForEmptyLoop = Boolean(v);
      },
    };
    const text = inv.body.toString('utf8');
    let event;
    try {
      event = JSON.parse(text);
    } catch (_) {
      event = text;
    }

    const outcome = await runHandler(handler, event, context);
    if (outcome.isError) {
      await report(urlBase, errorPayload(outcome.value, id));
      continue;
    }
    let body;
    try {
      body = JSON.stringify(outcome.value);
      if (body === undefined) body = 'null';
    } catch (err) {
      await report(urlBase, {
        errorMessage: `Unable to stringify response body: ${err && err.message}`,
        errorType: 'Runtime.MarshalError',
        stackTrace: [],
        requestId: id,
      });
      continue;
    }
    try {
      const res = await postJson(`${urlBase}/response`, body);
      if (res.status === 413) {
        await report(urlBase, {
          errorMessage: `Response payload size (${Buffer.byteLength(body)} bytes) exceeded maximum allowed payload size.`,
          errorType: 'Function.ResponseSizeTooLarge',
          stackTrace: [],
          requestId: id,
        });
      }
    } catch (err) {
      process.stderr.write(`bootstrap: POST response failed: ${err && err.message}\n`);
    }
  }
}

// Errors escaping the handler's own promise chain.
function onStrayError(kind, err) {
  const payload = errorPayload(err, current ? current.id : undefined);
  process.stderr.write(`bootstrap: ${kind}${current ? ` during invocation ${current.id}` : ' between invocations'}\n`);
  logError(payload);
  if (current) current.finish(true, err === undefined || err === null ? new Error(`${kind}: ${err}`) : err);
}
process.on('uncaughtException', (err) => onStrayError('uncaughtException', err));
process.on('unhandledRejection', (reason) => onStrayError('unhandledRejection', reason));

// A callback-style handler that never calls back and leaves nothing pending:
// answer null once the event loop drains (as Lambda does).
process.on('beforeExit', () => {
  if (current) current.finish(false, null);
});

async function main() {
  const spec = (env._HANDLER || process.argv[2] || '').trim();
  const taskRoot = env.LAMBDA_TASK_ROOT || '/var/task';
  setupNodePath();
  let handler;
  try {
    handler = await loadHandler(spec, taskRoot);
  } catch (err) {
    const payload = errorPayload(err);
    logError(payload);
    try {
      await postJson(`${API_PREFIX}/init/error`, JSON.stringify(payload), payload.errorType);
    } catch (e) {
      process.stderr.write(`bootstrap: could not report init error: ${e && e.message}\n`);
    }
    process.exit(1);
  }
  await invokeLoop(handler);
}

main().catch((err) => {
  process.stderr.write(`bootstrap: fatal: ${(err && err.stack) || err}\n`);
  process.exit(1);
});
