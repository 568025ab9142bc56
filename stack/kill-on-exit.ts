const pending = new Map<number, NodeJS.Signals>();
let installed = false;

/**
 * Makes sure a process we started does not outlive us when we exit without stopping it (a crash, an
 * explicit `process.exit`). Returns the function that forgets the pid once the process is gone.
 */
export function killOnExit(pid: number, signal: NodeJS.Signals = 'SIGKILL'): () => void {
  if (!installed) {
    installed = true;
    process.on('exit', () => {
      for (const [leftover, leftoverSignal] of pending) {
        try {
          process.kill(leftover, leftoverSignal);
        } catch {
          // already gone
        }
      }
    });
  }
  pending.set(pid, signal);
  return () => {
    pending.delete(pid);
  };
}
