import { configSchemas, loadConfig } from '../shared/config.js';
import { createLogger } from '../shared/logger.js';
import { migrate } from '../shared/migrate.js';
import { installProcessHygiene } from '../shared/process-hygiene.js';

const config = loadConfig(configSchemas.base);
const logger = createLogger({ role: 'migrate', level: config.LOG_LEVEL });
installProcessHygiene({ logger });
const applied = await migrate(config.DATABASE_URL);
logger.info({ applied }, applied.length > 0 ? 'migrations applied' : 'schema up to date');
