import { z } from 'zod';
import { DEVELOPMENT_ONLY_JWT_SECRET, loadConfig } from '../shared/config.js';
import { signDevelopmentToken } from './auth/development-token.js';

/**
 * `npm run token -- 42 [hours]`: prints an HS256 token for user 42, signed with JWT_SECRET (the development
 * default when unset), for trying the API with curl or a WebSocket client. Refuses to run in production.
 */

const config = loadConfig(
  z.object({
    NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
    JWT_SECRET: z.string().min(1).default(DEVELOPMENT_ONLY_JWT_SECRET),
  }),
);
const [userIdArgument, hoursArgument] = process.argv.slice(2);
const args = z
  .object({
    userId: z.string({ error: 'the user id is required' }).regex(/^[1-9][0-9]{0,14}$/, 'the user id is a positive integer'),
    hours: z.coerce.number().positive().max(24 * 365).default(12),
  })
  .safeParse({ userId: userIdArgument, hours: hoursArgument });

if (config.NODE_ENV === 'production') {
  process.stderr.write('refusing to mint tokens with NODE_ENV=production\n');
  process.exit(1);
}
if (!args.success) {
  process.stderr.write(`usage: npm run token -- <user id> [hours, default 12]\n${z.prettifyError(args.error)}\n`);
  process.exit(2);
}
const { userId, hours } = args.data;
const token = await signDevelopmentToken({ userId, secret: config.JWT_SECRET, expiresInSeconds: Math.round(hours * 3_600) });
process.stdout.write(`${token}\n`);
