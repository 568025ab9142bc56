/** A short-lived token for user `userId` from the development gateway's `POST /demo/token`. */
export async function fetchDemoToken(userId: number): Promise<string> {
  const response = await fetch('/demo/token', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ user_id: userId }),
  });
  const body = (await response.json()) as { success: true; data: { token: string } } | { success: false; error: string };
  if (!body.success) throw new Error(`no token for user ${userId}: ${body.error}`);
  return body.data.token;
}
