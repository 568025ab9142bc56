import { SignJWT } from 'jose';

/** HS256 tokens as Matcha's auth service issues them: `sub` is the user id as a string of digits. */
export function createTokenMinter(secret: string, validForSeconds: number): (userId: number) => Promise<string> {
  const key = new TextEncoder().encode(secret);
  return (userId) =>
    new SignJWT({})
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(String(userId))
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + validForSeconds)
      .sign(key);
}
