import { describe, expect, it } from 'vitest';
import { ChatError } from './chat-error.js';
import { PendingRequests } from './pending-requests.js';

function pending() {
  let next = 0;
  const requests = new PendingRequests(() => `r${++next}`);
  const send = (key: string) => {
    const answer = requests.add('send', (requestId) => ({ type: 'send_message', conversation_id: 'c', content: key, client_msg_id: key, request_id: requestId }));
    answer.catch(() => undefined);
    return answer;
  };
  return { requests, send };
}

const ids = (frames: { request_id?: string | number }[]) => frames.map((frame) => frame.request_id);

describe('PendingRequests', () => {
  it('writes each queued request once, a new request_id per attempt, the same frame otherwise', () => {
    const { requests, send } = pending();
    void send('k1');
    void send('k2');
    expect(requests.takeFramesToSend()).toEqual([
      { type: 'send_message', conversation_id: 'c', content: 'k1', client_msg_id: 'k1', request_id: 'r1' },
      { type: 'send_message', conversation_id: 'c', content: 'k2', client_msg_id: 'k2', request_id: 'r2' },
    ]);
    expect(requests.takeFramesToSend()).toEqual([]);
    requests.onOffline();
    expect(requests.takeFramesToSend()).toMatchObject([
      { client_msg_id: 'k1', request_id: 'r3' },
      { client_msg_id: 'k2', request_id: 'r4' },
    ]);
  });

  it('matches an answer to the attempt it answers: an ack of an older attempt settles nothing', async () => {
    const { requests, send } = pending();
    const answer = send('k1');
    requests.takeFramesToSend();
    requests.onOffline();
    requests.takeFramesToSend();
    expect(requests.onAck('r1', 'stale')).toBe(false);
    expect(requests.onAck('r2', 'fresh')).toBe(true);
    await expect(answer).resolves.toBe('fresh');
    expect(requests.size).toBe(0);
  });

  it('holds a request refused with a passing code until retry(), and rejects on any other code', async () => {
    const { requests, send } = pending();
    void send('k1');
    const refused = send('k2');
    requests.takeFramesToSend();
    const outcome = requests.onError('r1', 'rate_limited', 'slow down');
    expect(outcome).toMatchObject({ handled: true, retry: { refusals: 1 } });
    expect(requests.onError('r2', 'too_long', 'over 1000')).toEqual({ handled: true });
    await expect(refused).rejects.toEqual(new ChatError('too_long', 'over 1000'));
    expect(requests.takeFramesToSend()).toEqual([]);
    if (outcome.handled && outcome.retry) requests.retry(outcome.retry.token);
    expect(ids(requests.takeFramesToSend())).toEqual(['r3']);
    expect(requests.onError('r99', 'unavailable', 'x')).toEqual({ handled: false });
  });

  it('after a lost socket, requests waiting out a refusal go out again first, in the order they were made', () => {
    const { requests, send } = pending();
    void send('k1');
    void send('k2');
    requests.takeFramesToSend();
    requests.onError('r1', 'unavailable', 'draining');
    requests.onOffline();
    expect(requests.takeFramesToSend().map((frame) => ('client_msg_id' in frame ? frame.client_msg_id : null))).toEqual(['k1', 'k2']);
  });

  it('rejects typing and auth on a lost socket (they do not survive it), keeps sends and reads', async () => {
    const { requests } = pending();
    const typing = requests.add('typing', (requestId) => ({ type: 'typing', conversation_id: 'c', is_typing: true, request_id: requestId }));
    const auth = requests.add('auth', (requestId) => ({ type: 'auth', token: 't', request_id: requestId }));
    const read = requests.add('read', (requestId) => ({ type: 'read', conversation_id: 'c', request_id: requestId }));
    requests.takeFramesToSend();
    requests.onOffline();
    await expect(typing).rejects.toMatchObject({ code: 'disconnected' });
    await expect(auth).rejects.toMatchObject({ code: 'disconnected' });
    expect(requests.takeFramesToSend()).toMatchObject([{ type: 'read' }]);
    requests.rejectAll(new ChatError('closed', 'bye'));
    await expect(read).rejects.toMatchObject({ code: 'closed' });
  });
});
