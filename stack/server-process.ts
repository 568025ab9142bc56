import { spawn, type ChildProcess } from 'node:child_process';
import { describeExit, forEachLine, isRunning, terminate, waitForExit, type ExitStatus } from './child-process.js';
import { waitForPort } from './free-port.js';
import { killOnExit } from './kill-on-exit.js';
import { LogTail } from './log-tail.js';

export type ServerProcessOptions = {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  /** Ready once this port on 127.0.0.1 accepts connections. */
  readonly port: number;
  /** In its own process group, so that a terminal's Ctrl-C reaches only the parent, which stops it in order. */
  readonly detached?: boolean;
  readonly onLog?: (line: string) => void;
  readonly startTimeoutMs?: number;
  readonly stopTimeoutMs?: number;
};

export type ServerProcess = {
  readonly child: ChildProcess;
  readonly exited: Promise<ExitStatus>;
  kill(signal: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after `stopTimeoutMs`; resolves once the process has exited. */
  stop(): Promise<void>;
};

/** Spawns a server binary and resolves once it accepts connections; rejects (leaving nothing running) otherwise. */
export async function startServerProcess(options: ServerProcessOptions): Promise<ServerProcess> {
  const tail = new LogTail();
  const child = spawn(options.command, options.args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.detached ?? false,
  });
  const log = (line: string): void => {
    tail.push(line);
    options.onLog?.(line);
  };
  forEachLine(child.stdout, log);
  forEachLine(child.stderr, log);

  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  const exited = waitForExit(child);
  const forget = child.pid === undefined ? () => undefined : killOnExit(child.pid);
  void exited.then(forget);

  const stop = async (): Promise<void> => {
    await terminate(child, { killAfterMs: options.stopTimeoutMs ?? 5_000 });
  };

  try {
    await Promise.race([
      waitForPort(options.port, { timeoutMs: options.startTimeoutMs ?? 30_000, abort: exited }),
      spawnError.then((error) => {
        throw error.message.includes('ENOENT')
          ? new Error(`${options.command} is not on PATH (npm start installs it; or: sudo apt-get install ${options.command})`)
          : error;
      }),
      exited.then((status) => {
        throw new Error(`exited with ${describeExit(status)}`);
      }),
    ]);
  } catch (error) {
    await stop();
    const detail = error instanceof Error ? error.message : String(error);
    const output = tail.toString();
    throw new Error(`${options.name} did not start on port ${options.port}: ${detail}${output ? `\n${output}` : ''}`, {
      cause: error,
    });
  }

  return {
    child,
    exited,
    kill: (signal) => {
      if (isRunning(child)) child.kill(signal);
    },
    stop,
  };
}
