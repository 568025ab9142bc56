/**
 * Other spellings of one compact JWS that decode to the same bytes. Each was accepted by jose 6 on Node 20
 * (its base64url decoder is `atob` after `-_` → `+/`): only the signature segment can be re-spelled without
 * breaking the signature, since the signing input is the header and payload text as sent.
 */
export type Spelling = { readonly name: string; readonly text: string };

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

export function respellings(token: string): Spelling[] {
  const [header, payload, signature] = token.split('.') as [string, string, string];
  const signed = (sig: string): string => `${header}.${payload}.${sig}`;
  const last = ALPHABET.indexOf(signature.at(-1) ?? 'A');
  // 32 signature bytes are 43 characters: the last one carries 2 bits nobody reads.
  const unusedBits = signature.length % 4 === 3 ? 2 : signature.length % 4 === 2 ? 4 : 0;
  const spellings: Spelling[] = [];
  for (let bits = 1; bits < 1 << unusedBits; bits++) {
    spellings.push({ name: `unused bits ${bits}`, text: signed(`${signature.slice(0, -1)}${ALPHABET[last ^ bits]}`) });
  }
  spellings.push({ name: 'padding', text: `${token}=` });
  for (const [name, space] of [['space', ' '], ['tab', '\t'], ['line feed', '\n'], ['carriage return', '\r'], ['form feed', '\f']] as const) {
    spellings.push({ name: `${name} inside the signature`, text: signed(`${signature.slice(0, 10)}${space}${signature.slice(10)}`) });
    spellings.push({ name: `${name} before the signature`, text: signed(`${space}${signature}`) });
    spellings.push({ name: `${name} after the signature`, text: `${token}${space}` });
  }
  return spellings;
}

/** Can a client put `text` in an HTTP header value (as undici and Node's parser allow)? */
export const fitsInHeader = (text: string): boolean => /^[\x21-\x7e](?:[\x20-\x7e\t]*[\x21-\x7e])?$/.test(text);
