/**
 * A WebSocket double for the client's unit tests: it records what the client writes and lets the test play
 * the server (open, frames, close). Only the surface the client uses (onopen/onmessage/onclose, send, close,
 * readyState); the real gateway is in test/integration/client.
 */
export class FakeWebSocket {
  static readonly instances: FakeWebSocket[] = [];
  static reset(): void {
    FakeWebSocket.instances.length = 0;
  }
  static last(): FakeWebSocket {
    const socket = FakeWebSocket.instances.at(-1);
    if (!socket) throw new Error('no socket was opened');
    return socket;
  }

  readonly url: string;
  readyState = 0;
  readonly sent: Record<string, unknown>[] = [];
  closedByClient: { code?: number; reason?: string } | null = null;
  /** Answer `ping` with `pong`, as the gateway does; a test of a silent server turns it off. */
  autoPong = true;
  onopen: ((event: Event) => void) | null = null;
  onmessage: ((event: MessageEvent) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;

  constructor(url: string | URL) {
    this.url = String(url);
    FakeWebSocket.instances.push(this);
  }

  send(text: string): void {
    if (this.readyState !== 1) throw new Error('send on a socket that is not open');
    const frame = JSON.parse(text) as Record<string, unknown>;
    this.sent.push(frame);
    if (frame['type'] === 'ping' && this.autoPong) this.receive({ type: 'pong', timestamp: new Date().toISOString() });
  }

  close(code?: number, reason?: string): void {
    this.closedByClient = { ...(code !== undefined && { code }), ...(reason !== undefined && { reason }) };
    this.readyState = 3;
  }

  /** The server side. */
  open(): void {
    this.readyState = 1;
    this.onopen?.({} as Event);
  }

  receive(frame: Record<string, unknown>): void {
    this.onmessage?.({ data: JSON.stringify(frame) } as MessageEvent);
  }

  /** The `connected` frame the gateway sends after auth. */
  acceptAuth(userId = 42): void {
    this.receive({ type: 'connected', timestamp: new Date().toISOString(), data: { user_id: userId, status: 'connected' } });
  }

  serverClose(code: number, reason = ''): void {
    this.readyState = 3;
    this.onclose?.({ code, reason } as CloseEvent);
  }

  sentOfType(type: string): Record<string, unknown>[] {
    return this.sent.filter((frame) => frame['type'] === type);
  }

  get since(): string | null {
    return new URL(this.url).searchParams.get('since');
  }
}

/** A compact JWT (unsigned: the client only reads `exp`) for `sub`, expiring at `expSeconds`. */
export function fakeToken(expSeconds: number, sub = '42', nonce = ''): string {
  const encode = (value: object): string => btoa(JSON.stringify(value)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  return `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode({ sub, exp: expSeconds, nonce })}.c2lnbmF0dXJl`;
}
