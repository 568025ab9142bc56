/** The role processes `npm start` runs, each as its own process. */
export const ROLES = [
  { name: 'relay', entry: 'src/relay/main.ts' },
  { name: 'projector', entry: 'src/projections/main.ts' },
  { name: 'fanout', entry: 'src/fanout/main.ts' },
  { name: 'gateway', entry: 'src/gateway/main.ts' },
  { name: 'notifier', entry: 'src/notifier/main.ts' },
] as const;

export type RoleSpec = { readonly name: string; readonly entry: string };
