import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
// Engine findings of the second outside review (points 11, 13, 17), each a regression test.
import { describe, expect, it } from 'vitest';
import { ClientCredentialsAuth, ConfigError } from '../../src/index.js';
import { useFakeOrg } from '../_org.js';

const fx = useFakeOrg();
const base = () => ({
  clientId: fx.org.clientId,
  clientSecret: fx.org.clientSecret,
  loginUrl: fx.org.loginUrl,
  instanceUrl: fx.org.instanceUrl,
});

describe('11. a logger is checked at construction, and a broken one costs no login', () => {
  it.each([
    [{ debug: 'yes' }, 'logger.debug'],
    [{ warn: 42 }, 'logger.warn'],
    [{ info: {} }, 'logger.info'],
    [{ error: true }, 'logger.error'],
  ])('%j is a ConfigError naming %s', (logger, option) => {
    const error = (() => {
      try {
        new ClientCredentialsAuth({ ...base(), logger: logger as never });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect(error).toMatchObject({ option });
    expect(fx.org.stats.tokenRequests).toBe(0);
  });

  it('a logger whose methods throw: 50 calls, 1 login', async () => {
    const thrower = () => {
      throw new Error('log sink down');
    };
    const session = new ClientCredentialsAuth({
      ...base(),
      logger: { debug: thrower, info: thrower, warn: thrower, error: thrower },
    });
    for (let i = 0; i < 50; i++) await session.getToken();
    expect(fx.org.stats.tokenRequests).toBe(1);
  });
});

describe('13. a clock that does not answer numbers fails at construction', () => {
  it.each([
    ['a string', () => '1700000000000'],
    ['NaN', () => Number.NaN],
    ['undefined', () => undefined],
    [
      'a thrower',
      () => {
        throw new Error('no clock');
      },
    ],
  ])('now() returning %s is a ConfigError naming now, before any request', (_, now) => {
    expect(() => new ClientCredentialsAuth({ ...base(), now: now as never })).toThrow(ConfigError);
    expect(fx.org.stats.tokenRequests).toBe(0);
  });
});

describe('17. a session dropped without close() is collectable', () => {
  it('its refresh timer holds it weakly: 20 dropped sessions are collected before their timers fire', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    let collected = 0;
    const registry = new FinalizationRegistry(() => {
      collected++;
    });
    const drop = async () => {
      const session = new ClientCredentialsAuth(base());
      await session.getToken(); // arms the unref'd timer that retires the hot token (25 min)
      registry.register(session, 0);
    };
    for (let i = 0; i < 20; i++) await drop();
    // The newest session may stay reachable from the last request's bookkeeping: one more.
    await drop();
    for (let i = 0; i < 50 && collected < 20; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(collected).toBeGreaterThanOrEqual(20);
  });
});
