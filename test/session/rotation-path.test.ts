import { expect, it } from 'vitest';
import { InMemoryTokenStore, RefreshTokenAuth } from '../../src/index.js';
import { useFakeOrg } from '../_org.js';
import { delegating } from '../_stores.js';

const fx = useFakeOrg();

it('a rotation with a store: fleet → grant → token endpoint, back up through the grant and fleet to the store, no engine frame between', async () => {
  const inner = new InMemoryTokenStore();
  let stack = '';
  const store = delegating(inner, {
    swapSecret: (key, presented, secret) => {
      stack = new Error('where the rotated refresh token is stored').stack ?? '';
      return inner.swapSecret(key, presented, secret);
    },
  });

  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 100;
  try {
    const session = new RefreshTokenAuth({
      clientId: fx.org.clientId,
      clientSecret: fx.org.clientSecret,
      refreshToken: fx.org.issueRefreshToken(),
      loginUrl: fx.org.loginUrl,
      instanceUrl: fx.org.instanceUrl,
      store,
    });
    await session.getToken();
    await session.close();
  } finally {
    Error.stackTraceLimit = limit;
  }
  // The src modules on the stack, innermost first, runs of one module folded into one.
  const modules = [...stack.matchAll(/\/src\/([\w/-]+\.ts):\d+/g)]
    .map((m) => m[1])
    .filter((m, i, all) => m !== all[i - 1]);
  expect(modules).toEqual([
    'session/fleet.ts', // adoptSecret: into the store, before the answer is parsed further
    'grants/refresh-token.ts', // the grant's rotation hook
    'token-endpoint.ts', // the answer carried a refresh_token
    'session/instrument.ts',
    'session/fleet.ts', // the mint under the fleet's lock, called by the engine
  ]);
  // The async stack ends at the fleet's mutex (async-mutex schedules the mint): above it is the
  // engine's #mintToken. What matters is what is not between: no engine frame inside the mint.
});
