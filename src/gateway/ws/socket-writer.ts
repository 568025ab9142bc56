import type { WebSocket } from 'ws';

export type SocketWriter = {
  /**
   * Queues a frame behind everything queued before. A `patient` frame (a catch-up's) waits for the peer to
   * read however long it takes; any other counts against the bound.
   * @returns false when the frame would take the unsent bytes over the bound: nothing is queued, and the
   * caller closes the slow peer.
   */
  write(text: string, options?: { readonly patient?: boolean }): boolean;
};

/** Bytes handed to the socket at once while frames wait: enough to keep a fast reader's pipe full. */
const HIGH_WATER_BYTES = 64 * 1024;

/**
 * Writes frames to a WebSocket in order, with backpressure: at most `HIGH_WATER_BYTES` sit in the socket's
 * own buffer; the rest waits here and goes out as the peer reads (each `send` callback, once its bytes are
 * handed to the kernel, writes more). Unsent bytes of non-patient frames, in both places, are bounded by
 * `maxUnsentBytes`: a peer that leaves more unread is too slow to keep. A catch-up is already bounded by
 * its own byte budget, so its frames wait instead of counting.
 */
export function createSocketWriter(socket: WebSocket, options: { readonly maxUnsentBytes: number }): SocketWriter {
  const queue: { readonly text: string; readonly bytes: number; readonly patient: boolean }[] = [];
  /** Bytes of live frames waiting here, and of catch-up frames handed to the socket and not written yet. */
  let queuedLiveBytes = 0;
  let patientInSocket = 0;

  const onWritten = (error?: Error): void => {
    if (!error) pump();
  };

  function pump(): void {
    while (queue.length > 0 && socket.readyState === socket.OPEN && socket.bufferedAmount < HIGH_WATER_BYTES) {
      const next = queue.shift()!;
      if (next.patient) {
        patientInSocket += next.bytes;
        socket.send(next.text, (error) => {
          patientInSocket -= next.bytes;
          onWritten(error);
        });
      } else {
        queuedLiveBytes -= next.bytes;
        socket.send(next.text, onWritten);
      }
    }
  }

  /** Live bytes not yet taken by the kernel: in the socket's buffer (minus catch-up bytes there) or here. */
  const unsentLiveBytes = () => Math.max(0, socket.bufferedAmount - patientInSocket) + queuedLiveBytes;

  return {
    write(text, { patient = false } = {}) {
      if (socket.readyState !== socket.OPEN) return true;
      const bytes = Buffer.byteLength(text);
      if (!patient && unsentLiveBytes() + bytes > options.maxUnsentBytes) return false;
      queue.push({ text, bytes, patient });
      if (!patient) queuedLiveBytes += bytes;
      pump();
      return true;
    },
  };
}
