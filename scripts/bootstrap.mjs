#!/usr/bin/env node
// One entry point for `npm start` and `npm test` on a fresh machine. Plain Node, no dependencies: it runs
// before node_modules exists.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, statSync, utimesSync, writeFileSync, rmSync, chmodSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const mode = process.argv[2];

if (mode !== 'start' && mode !== 'test') {
  console.error('usage: node scripts/bootstrap.mjs start|test');
  process.exit(2);
}

installNodeModules();
ensureServerBinaries();
process.exitCode = mode === 'start' ? await runStart() : await runTests();

function say(message) {
  console.log(`[bootstrap] ${message}`);
}

function mtimeMs(file) {
  return existsSync(file) ? statSync(file).mtimeMs : undefined;
}

function installNodeModules() {
  const lock = path.join(root, 'package-lock.json');
  const hiddenLock = path.join(root, 'node_modules', '.package-lock.json');
  const lockTime = mtimeMs(lock);
  const installedTime = mtimeMs(hiddenLock);
  if (installedTime !== undefined && (lockTime === undefined || installedTime >= lockTime)) return;

  const args = lockTime === undefined ? ['install'] : ['ci'];
  say(`node_modules is missing or older than package-lock.json: npm ${args.join(' ')}`);
  const result = spawnSync('npm', [...args, '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) {
    console.error(`[bootstrap] npm ${args[0]} failed`);
    process.exit(result.status ?? 1);
  }
  // `npm install` may write package-lock.json after node_modules/.package-lock.json; without this the next
  // run would reinstall for nothing.
  const now = new Date();
  if (existsSync(hiddenLock) && (mtimeMs(hiddenLock) ?? 0) < (mtimeMs(lock) ?? 0)) utimesSync(hiddenLock, now, now);
}

function onPath(binary) {
  return spawnSync('sh', ['-c', `command -v ${binary}`], { stdio: 'ignore' }).status === 0;
}

function ensureServerBinaries() {
  const needed = [];
  if (!process.env.NATS_URL && !onPath('nats-server')) needed.push('nats-server');
  if (!process.env.REDIS_URL && !onPath('redis-server')) needed.push('redis-server');
  // The browser test drives Debian's chromium (playwright-core never downloads a browser).
  if (mode === 'test' && !onPath('chromium')) needed.push('chromium');
  // The deployment tests check docker-compose.yml (no engine needed) and the load balancer's configuration.
  if (mode === 'test' && !onPath('docker-compose')) needed.push('docker-compose');
  if (mode === 'test' && !onPath('haproxy')) needed.push('haproxy');
  if (needed.length === 0) return;

  if (process.getuid?.() !== 0) {
    console.error(`[bootstrap] missing ${needed.join(' and ')}; install with:`);
    console.error(`sudo apt-get install ${needed.join(' ')}`);
    process.exit(1);
  }

  // Debian packages start their daemon on install; that daemon would then hold the ports the stack wants.
  const policy = '/usr/sbin/policy-rc.d';
  const ownPolicy = !existsSync(policy);
  if (ownPolicy) {
    writeFileSync(policy, '#!/bin/sh\nexit 101\n');
    chmodSync(policy, 0o755);
  }
  try {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const steps = [
      ['apt-get', ['-qq', 'update']],
      ['apt-get', ['-qq', 'install', '-y', '--no-install-recommends', ...needed]],
    ];
    for (const [command, args] of steps) {
      say(`${command} ${args.join(' ')}`);
      const result = spawnSync(command, args, { stdio: ['ignore', 'ignore', 'inherit'], env });
      if (result.status !== 0) {
        console.error(`[bootstrap] ${command} ${args.join(' ')} failed (exit ${result.status ?? result.signal})`);
        process.exit(1);
      }
    }
  } finally {
    if (ownPolicy) rmSync(policy, { force: true });
  }
  for (const binary of needed) {
    if (!onPath(binary)) {
      console.error(`[bootstrap] ${binary} is still not on PATH after apt-get install`);
      process.exit(1);
    }
  }
}

/** Runs one child with inherited stdio, forwarding termination signals, and resolves its exit code. */
function run(command, args, options = {}) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: root, stdio: 'inherit', ...options });
    const forward = (signal) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    };
    const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'];
    for (const signal of signals) process.on(signal, forward);
    child.on('error', (error) => {
      console.error(`[bootstrap] cannot run ${command}: ${error.message}`);
      resolve(127);
    });
    child.on('close', (code, signal) => {
      for (const s of signals) process.off(s, forward);
      resolve(code ?? (signal ? 128 + (signalNumber(signal) ?? 1) : 1));
    });
  });
}

function signalNumber(signal) {
  return { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 }[signal];
}

function runStart() {
  // Its own process group: a terminal Ctrl-C reaches only us, and the stack then stops its parts in order
  // (roles before the servers they use) instead of all of them receiving SIGINT at once.
  // The roles refuse the development JWT secret unless NODE_ENV says development (stack sets it for them).
  const env = { ...process.env, NODE_ENV: process.env.NODE_ENV || 'development' };
  return run(process.execPath, ['--import', 'tsx', 'stack/main.ts'], { detached: true, env });
}

async function runTests() {
  const bin = (name) => path.join(root, 'node_modules', '.bin', name);
  const steps = [
    ['typecheck', bin('tsc'), ['--noEmit', '-p', 'tsconfig.json']],
    // The demo page is browser code (DOM types): its own project.
    ['typecheck demo', bin('tsc'), ['--noEmit', '-p', 'demo/tsconfig.json']],
    ['lint', bin('eslint'), ['.']],
    ['tests', bin('vitest'), ['run']],
  ];
  // Explicit, not left to vitest: an unset NODE_ENV counts as production for the roles the tests spawn.
  const env = { ...process.env, NODE_ENV: 'test' };
  for (const [name, command, args] of steps) {
    say(`${name}: ${path.relative(root, command)} ${args.join(' ')}`);
    const code = await run(command, args, { env });
    if (code !== 0) {
      console.error(`[bootstrap] ${name} failed (exit ${code})`);
      return code;
    }
  }
  say('all steps passed');
  return 0;
}
