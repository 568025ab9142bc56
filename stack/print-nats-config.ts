import { composeAuthorization } from './nats-auth-config.js';

/** `npm run -s nats-config`: docker-compose's nats-server authorization, on stdout. */
process.stdout.write(composeAuthorization());
