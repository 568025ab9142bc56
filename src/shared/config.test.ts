import { describe, expect, it } from 'vitest';
import { configSchemas, loadConfig } from './config.js';

const env = { DATABASE_URL: 'postgres://127.0.0.1/chat', NODE_ENV: 'test' };

describe('DATABASE_POOL_SIZE', () => {
  it('defaults per role to what the role does with its pool', () => {
    expect(loadConfig(configSchemas.gateway, env).DATABASE_POOL_SIZE).toBe(10);
    expect(loadConfig(configSchemas.projector, env).DATABASE_POOL_SIZE).toBe(4);
    expect(loadConfig(configSchemas.relay, env).DATABASE_POOL_SIZE).toBe(2);
    expect(loadConfig(configSchemas.fanout, env).DATABASE_POOL_SIZE).toBe(2);
    expect(loadConfig(configSchemas.notifier, env).DATABASE_POOL_SIZE).toBe(2);
    expect(loadConfig(configSchemas.replay, env).DATABASE_POOL_SIZE).toBe(2);
  });

  it('is read by every role that opens a pool', () => {
    for (const schema of [configSchemas.gateway, configSchemas.projector, configSchemas.relay, configSchemas.fanout, configSchemas.notifier, configSchemas.replay]) {
      expect(loadConfig(schema, { ...env, DATABASE_POOL_SIZE: '7' }).DATABASE_POOL_SIZE).toBe(7);
    }
  });

  it('refuses a size that is not a positive integer, naming the variable', () => {
    expect(() => loadConfig(configSchemas.relay, { ...env, DATABASE_POOL_SIZE: '0' })).toThrow(/DATABASE_POOL_SIZE/);
    expect(() => loadConfig(configSchemas.relay, { ...env, DATABASE_POOL_SIZE: 'many' })).toThrow(/DATABASE_POOL_SIZE/);
  });
});
