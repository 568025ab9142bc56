import { DEFAULT_PAGE_SIZE, startSession } from './session.js';
import { byTestId } from './view.js';

/**
 * The development demo (`/demo`, served by a gateway with NODE_ENV=development): sign in as any user id,
 * then chat. `?user=42` signs in at once, for a second window or a script; `?page_size=5` loads messages
 * five at a time, to see paging without a long conversation.
 */

const parameters = new URLSearchParams(location.search);
const pageSize = Number(parameters.get('page_size') ?? DEFAULT_PAGE_SIZE);

function signIn(userId: number): void {
  byTestId('sign-in').hidden = true;
  byTestId('me').textContent = `user ${userId}`;
  document.title = `user ${userId} · Matcha chat demo`;
  (document.getElementById('whoami') as HTMLElement).hidden = false;
  (document.getElementById('chat') as HTMLElement).hidden = false;
  startSession(userId, { pageSize: Number.isInteger(pageSize) && pageSize >= 1 && pageSize <= 1000 ? pageSize : DEFAULT_PAGE_SIZE });
}

const validUserId = (text: string | null): number | undefined => (text !== null && /^[1-9][0-9]{0,14}$/.test(text) ? Number(text) : undefined);

const fromUrl = validUserId(parameters.get('user'));
if (fromUrl !== undefined) {
  signIn(fromUrl);
} else {
  byTestId<HTMLFormElement>('sign-in').addEventListener('submit', (event) => {
    event.preventDefault();
    const userId = validUserId(byTestId<HTMLInputElement>('user-id-input').value.trim());
    if (userId !== undefined) signIn(userId);
  });
}
