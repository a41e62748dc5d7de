import { describe, expect, it } from 'vitest';
import { authFetch } from '../../src/adapters/fetch.js';
import { ConfigError, InsecureUrlError, StaticTokenAuth } from '../../src/index.js';
import { useFakeOrg } from '../_org.js';
import { expectNoSecrets } from '../_secrets.js';

const fx = useFakeOrg();

describe('StaticTokenAuth', () => {
  it('hands out its token; invalidate is a no-op, so a rejected token surfaces its 401', async () => {
    const minted = await fx.session().getToken();
    const session = new StaticTokenAuth({
      accessToken: minted,
      instanceUrl: `${fx.org.instanceUrl}/`,
    });
    expect(session.instanceUrl).toBe(fx.org.instanceUrl);
    expect(await session.getToken()).toBe(minted);
    await session.invalidate(minted);
    expect(await session.getToken()).toBe(minted);

    const sfFetch = authFetch(session);
    expect((await sfFetch('/services/data/v62.0/limits')).status).toBe(200);
    fx.org.revokeAllTokens();
    fx.org.resetStats();
    expect((await sfFetch('/services/data/v62.0/limits')).status).toBe(401);
    expect(fx.org.stats.apiRequests).toBe(1);
  });

  it('validates its options and never shows the token', () => {
    expect(
      () => new StaticTokenAuth({ accessToken: '', instanceUrl: 'https://a.my.salesforce.com' }),
    ).toThrow(expect.objectContaining({ option: 'accessToken' }));
    expect(
      () => new StaticTokenAuth({ accessToken: 'x', instanceUrl: 'http://a.my.salesforce.com' }),
    ).toThrow(InsecureUrlError);
    expect(() => new StaticTokenAuth(null as never)).toThrow(ConfigError);
    // A token no header can carry is refused here, not quoted by the runtime at the first request.
    for (const accessToken of ['00D!secret-token\n', '00D!secret token', '00D!secret-tokén']) {
      const error = (() => {
        try {
          return new StaticTokenAuth({ accessToken, instanceUrl: 'https://a.my.salesforce.com' });
        } catch (e) {
          return e;
        }
      })();
      expect(error).toMatchObject({ code: 'ERR_CONFIG', option: 'accessToken' });
      expectNoSecrets(error, ['secret']);
    }
    const session = new StaticTokenAuth({
      accessToken: '00Dsecret!token',
      instanceUrl: 'https://a.my.salesforce.com',
    });
    expectNoSecrets(session, ['00Dsecret!token']);
  });

  it('rejects for an aborted signal', async () => {
    const session = new StaticTokenAuth({
      accessToken: 'tok',
      instanceUrl: 'https://a.my.salesforce.com',
    });
    const signal = AbortSignal.abort(new Error('stop'));
    await expect(session.getToken({ signal })).rejects.toThrow('stop');
  });
});
