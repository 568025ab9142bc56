import { once } from 'node:events';
import { WebSocket } from 'ws';

/**
 * One call of the Chrome DevTools protocol in another Node process, through its inspector
 * (`--inspect=127.0.0.1:<port>`, given by the benchmark only): opens a session, sends `method`, resolves with
 * its result, closes. Nothing is enabled in the session, so it leaves nothing behind in the process.
 */
async function inspectorCall(inspectPort: number, method: string, params: object = {}): Promise<unknown> {
  const response = await fetch(`http://127.0.0.1:${inspectPort}/json/list`);
  const [target] = (await response.json()) as { readonly webSocketDebuggerUrl: string }[];
  if (target === undefined) throw new Error(`no inspector target on port ${inspectPort}`);
  const socket = new WebSocket(target.webSocketDebuggerUrl);
  try {
    await once(socket, 'open');
    const answered = new Promise<unknown>((resolve, reject) => {
      socket.on('message', (data: Buffer) => {
        const message = JSON.parse(data.toString('utf8')) as { id?: number; result?: unknown; error?: { message: string } };
        if (message.id !== 1) return;
        if (message.error) reject(new Error(`${method}: ${message.error.message}`));
        else resolve(message.result);
      });
      socket.once('close', () => reject(new Error(`the inspector closed before answering ${method}`)));
    });
    socket.send(JSON.stringify({ id: 1, method, params }));
    return await answered;
  } finally {
    socket.close();
  }
}

/**
 * A full garbage collection in the process: `HeapProfiler.collectGarbage`. Unlike a heap snapshot, which
 * collects too but leaves the process holding the snapshot's own native memory, it adds nothing to the
 * process's resident memory. Resolves once the collection is done.
 */
export async function collectGarbage(inspectPort: number): Promise<void> {
  await inspectorCall(inspectPort, 'HeapProfiler.collectGarbage');
}

/**
 * Evaluates `expression` in the process's main context (`Runtime.evaluate`, its value returned by value):
 * for reading what the process knows of itself (`process.memoryUsage()`, `v8.getHeapSpaceStatistics()`)
 * without any code of its own for it.
 */
export async function evaluate(inspectPort: number, expression: string): Promise<unknown> {
  const result = (await inspectorCall(inspectPort, 'Runtime.evaluate', { expression, returnByValue: true })) as {
    readonly result: { readonly value?: unknown };
    readonly exceptionDetails?: { readonly text: string; readonly exception?: { readonly description?: string } };
  };
  if (result.exceptionDetails) {
    throw new Error(`evaluate: ${result.exceptionDetails.exception?.description ?? result.exceptionDetails.text}`);
  }
  return result.result.value;
}
