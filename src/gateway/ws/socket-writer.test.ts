import { describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { createSocketWriter } from './socket-writer.js';

/**
 * The writer's backpressure with a socket whose buffer the test controls: on loopback the kernel takes
 * megabytes from a peer that does not read (measured: about 4 MB), so a real socket cannot show when the
 * writer holds back (test/integration/gateway/websocket.test.ts runs the whole path over a real one).
 */
function peer() {
  const written: string[] = [];
  const callbacks: ((error?: Error) => void)[] = [];
  const socket = {
    OPEN: 1,
    readyState: 1,
    bufferedAmount: 0,
    send(text: string, callback: (error?: Error) => void) {
      written.push(text);
      socket.bufferedAmount += Buffer.byteLength(text);
      callbacks.push(callback);
    },
  };
  return {
    socket: socket as unknown as WebSocket,
    written,
    /** The peer reads everything handed to the socket so far: its buffer empties, its callbacks run. */
    read: () => {
      socket.bufferedAmount = 0;
      for (const callback of callbacks.splice(0)) callback();
    },
  };
}

const KIB = 1024;
const frame = (label: string, bytes: number) => label.padEnd(bytes, '.');

describe('the socket writer', () => {
  it('hands a catch-up over as the peer reads, and keeps live frames behind it', () => {
    const { socket, written, read } = peer();
    const writer = createSocketWriter(socket, { maxUnsentBytes: 64 * KIB });
    // 500 frames of 1.3 KB: far over the live bound, none refused
    for (let i = 0; i < 500; i++) expect(writer.write(frame(`c${i}`, 1_300), { patient: true })).toBe(true);
    expect(writer.write(frame('live', 100))).toBe(true);
    // only about 64 KiB reach the socket before the peer reads
    expect(written.length).toBeLessThanOrEqual(Math.ceil((64 * KIB) / 1_300) + 1);
    for (let reads = 0; written.length < 501 && reads < 1_000; reads++) read();
    expect(written.map((text) => text.split('.')[0])).toEqual([...Array.from({ length: 500 }, (_, i) => `c${i}`), 'live']);
  });

  it('refuses a live frame that would take the unsent live bytes over the bound', () => {
    const { socket, read } = peer();
    const writer = createSocketWriter(socket, { maxUnsentBytes: 10 * KIB });
    for (let i = 0; i < 9; i++) expect(writer.write(frame(`l${i}`, KIB))).toBe(true);
    expect(writer.write(frame('too much', 2 * KIB))).toBe(false);
    read();
    expect(writer.write(frame('after the peer read', 2 * KIB))).toBe(true);
  });

  it('does not count queued catch-up bytes against live frames', () => {
    const { socket } = peer();
    const writer = createSocketWriter(socket, { maxUnsentBytes: 100 * KIB });
    for (let i = 0; i < 200; i++) writer.write(frame(`c${i}`, KIB), { patient: true });
    // The socket holds about 64 KiB of the catch-up; the rest waits in the writer and does not count.
    expect(writer.write(frame('live', 20 * KIB))).toBe(true);
  });

  it('writes nothing to a socket that is no longer open', () => {
    const { socket, written } = peer();
    (socket as unknown as { readyState: number }).readyState = 3;
    const writer = createSocketWriter(socket, { maxUnsentBytes: KIB });
    expect(writer.write(frame('x', 10 * KIB))).toBe(true);
    expect(written).toEqual([]);
  });
});
