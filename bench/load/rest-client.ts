import http from 'node:http';

export type RestAnswer = { readonly status: number; readonly body: unknown };

export type RestClient = {
  /** JSON in, JSON out; rejects only on a transport failure (refused, reset, timeout). */
  request(method: 'GET' | 'POST', url: string, token: string, body?: unknown): Promise<RestAnswer>;
  close(): void;
};

/**
 * Keep-alive HTTP from one source address. Node's `fetch` cannot pick the source address without undici
 * (not a dependency), and every worker needs its own: 127.0.0.1 alone has too few ephemeral ports for
 * tens of thousands of sockets.
 */
export function createRestClient(options: { readonly localAddress: string; readonly maxSockets: number; readonly timeoutMs: number }): RestClient {
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.maxSockets });
  return {
    request(method, url, token, body) {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      return new Promise((resolve, reject) => {
        const request = http.request(
          url,
          {
            method,
            agent,
            localAddress: options.localAddress,
            timeout: options.timeoutMs,
            headers: {
              authorization: `Bearer ${token}`,
              ...(payload !== undefined && { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
            },
          },
          (response) => {
            const chunks: Buffer[] = [];
            response.on('data', (chunk: Buffer) => chunks.push(chunk));
            response.on('error', reject);
            response.on('end', () => {
              const text = Buffer.concat(chunks).toString('utf8');
              let parsed: unknown = text;
              try {
                parsed = JSON.parse(text);
              } catch {
                // Not JSON: kept as text for the failure report.
              }
              resolve({ status: response.statusCode ?? 0, body: parsed });
            });
          },
        );
        request.on('timeout', () => request.destroy(new Error('timeout')));
        request.on('error', reject);
        request.end(payload);
      });
    },
    close: () => agent.destroy(),
  };
}
