/** The role processes `npm start` runs, each as its own process. */
export const ROLES = [
  { name: 'relay', entry: 'src/relay/main.ts' },
  { name: 'projector', entry: 'src/projections/main.ts' },
] as const;

export type RoleSpec = { readonly name: string; readonly entry: string };
