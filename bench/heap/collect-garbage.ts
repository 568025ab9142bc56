import { once } from 'node:events';
import { WebSocket } from 'ws';

/**
 * A full garbage collection in another Node process, through its inspector (`--inspect=127.0.0.1:<port>`,
 * given by the benchmark only): `HeapProfiler.collectGarbage`, nothing else enabled. Unlike a heap snapshot,
 * which collects too but leaves the process holding the snapshot's own native memory, it adds nothing to
 * the process's resident memory. Resolves once the collection is done.
 */
export async function collectGarbage(inspectPort: number): Promise<void> {
  const response = await fetch(`http://127.0.0.1:${inspectPort}/json/list`);
  const [target] = (await response.json()) as { readonly webSocketDebuggerUrl: string }[];
  if (target === undefined) throw new Error(`no inspector target on port ${inspectPort}`);
  const socket = new WebSocket(target.webSocketDebuggerUrl);
  try {
    await once(socket, 'open');
    const answered = new Promise<void>((resolve, reject) => {
      socket.on('message', (data: Buffer) => {
        const message = JSON.parse(data.toString('utf8')) as { id?: number; error?: { message: string } };
        if (message.id !== 1) return;
        if (message.error) reject(new Error(`collectGarbage: ${message.error.message}`));
        else resolve();
      });
      socket.once('close', () => reject(new Error('the inspector closed before collecting')));
    });
    socket.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' }));
    await answered;
  } finally {
    socket.close();
  }
}
