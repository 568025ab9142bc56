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

type Pending = { readonly text: string; readonly bytes: number; readonly patient: boolean };

/**
 * Writes frames to a WebSocket in order, with backpressure: at most `HIGH_WATER_BYTES` sit in the socket's
 * own buffer; the rest waits here and goes out as the peer reads (each `send` callback, once its bytes are
 * handed to the kernel, writes more). Unsent bytes of non-patient frames, in both places, are bounded by
 * `maxUnsentBytes`: a peer that leaves more unread is too slow to keep. A catch-up is already bounded by
 * its own byte budget, so its frames wait instead of counting.
 *
 * One per socket, so its state is one object (methods on the prototype) and its queue exists only while
 * frames wait: an idle socket holds no more than the object. The socket session extends it (socket-session.ts),
 * so that a socket's session and writer are that one object.
 */
export class BoundedSocketWriter implements SocketWriter {
  readonly #socket: WebSocket;
  readonly #maxUnsentBytes: number;
  #queue: Pending[] | null = null;
  /** Bytes of live frames waiting here, and of catch-up frames handed to the socket and not written yet. */
  #queuedLiveBytes = 0;
  #patientInSocket = 0;

  constructor(socket: WebSocket, maxUnsentBytes: number) {
    this.#socket = socket;
    this.#maxUnsentBytes = maxUnsentBytes;
  }

  write(text: string, { patient = false }: { readonly patient?: boolean } = {}): boolean {
    const socket = this.#socket;
    if (socket.readyState !== socket.OPEN) return true;
    const bytes = Buffer.byteLength(text);
    if (!patient && this.#unsentLiveBytes() + bytes > this.#maxUnsentBytes) return false;
    (this.#queue ??= []).push({ text, bytes, patient });
    if (!patient) this.#queuedLiveBytes += bytes;
    this.#pump();
    return true;
  }

  /** Live bytes not yet taken by the kernel: in the socket's buffer (minus catch-up bytes there) or here. */
  #unsentLiveBytes(): number {
    return Math.max(0, this.#socket.bufferedAmount - this.#patientInSocket) + this.#queuedLiveBytes;
  }

  #pump(): void {
    const socket = this.#socket;
    const queue = this.#queue;
    while (queue !== null && queue.length > 0 && socket.readyState === socket.OPEN && socket.bufferedAmount < HIGH_WATER_BYTES) {
      const next = queue.shift()!;
      if (next.patient) {
        this.#patientInSocket += next.bytes;
        socket.send(next.text, (error) => {
          this.#patientInSocket -= next.bytes;
          this.#written(error);
        });
      } else {
        this.#queuedLiveBytes -= next.bytes;
        socket.send(next.text, (error) => this.#written(error));
      }
    }
    // An emptied queue is dropped: idle sockets are most of a gateway's.
    if (queue !== null && queue.length === 0) this.#queue = null;
  }

  #written(error: Error | undefined): void {
    if (!error) this.#pump();
  }
}

export function createSocketWriter(socket: WebSocket, options: { readonly maxUnsentBytes: number }): SocketWriter {
  return new BoundedSocketWriter(socket, options.maxUnsentBytes);
}
