/** A random id for `client_msg_id` and `request_id`: 22 characters of [A-Za-z0-9_-] (128 bits), from crypto.getRandomValues. */
export function randomId(): string {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  let id = '';
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      id += alphabet[(value >> bits) & 63];
    }
  }
  if (bits > 0) id += alphabet[(value << (6 - bits)) & 63];
  return id;
}
