/** Returns a current JWT; the app refreshes it (the client asks again before `exp` and after a 4401). */
export type TokenProvider = () => Promise<string>;
