import { describe, expect, it } from 'vitest';
import {
  type AuthSession,
  fromEnv,
  fromSfdxAuthUrl,
  IdentityError,
  JwtBearerAuth,
  RefreshTokenAuth,
  SignatureMismatchError,
  StaticTokenAuth,
  SubjectTokenType,
  TokenExchangeAuth,
  type TokenInfo,
} from '../../src/index.js';
import { startFakeOrg } from '../../src/testing/index.js';
import { tokenInfo, tokenInfoFromRecord, tokenInfoRecord } from '../../src/token-info.js';
import { loginThrough, useFakeOrg, webServerFlowFor } from '../_org.js';
import { caught, expectNoSecrets } from '../_secrets.js';

const fx = useFakeOrg({ users: ['admin@example.com'] });
const ORG_ID = '00D000000000001EAA';
const USER_ID = '005000000000001AAA';

type WithInfo = AuthSession & {
  getTokenInfo(): Promise<TokenInfo>;
  identity(): Promise<{ orgId: string; userId: string; username?: string | undefined }>;
};

/** Every grant, each built against the fake org, and whether it holds a client secret. */
const grants: [string, boolean, () => Promise<WithInfo>][] = [
  ['client credentials', true, async () => fx.session()],
  [
    'JWT bearer',
    false,
    async () =>
      new JwtBearerAuth({
        clientId: fx.org.clientId,
        username: fx.org.username,
        privateKey: fx.org.jwtPrivateKey as string,
        loginUrl: fx.org.loginUrl,
        instanceUrl: fx.org.instanceUrl,
      }),
  ],
  ['refresh token', true, async () => fx.refreshing().session],
  [
    'refresh token (public app)',
    false,
    async () => {
      const org = fx.org;
      return new RefreshTokenAuth({
        clientId: org.clientId,
        refreshToken: org.issueRefreshToken(),
        loginUrl: org.loginUrl,
        instanceUrl: org.instanceUrl,
        // The fake requires a secret by default: this app still sends none, so nothing is checked.
        fetch: (input, init) => {
          const body = new URLSearchParams(String(init?.body));
          body.set('client_secret', org.clientSecret);
          return fetch(input, { ...init, body: body.toString() });
        },
      });
    },
  ],
  [
    'token exchange',
    true,
    async () => {
      fx.org.addSubjectToken('idp-token', SubjectTokenType.ACCESS_TOKEN);
      return new TokenExchangeAuth({
        clientId: fx.org.clientId,
        clientSecret: fx.org.clientSecret,
        subjectToken: 'idp-token',
        subjectTokenType: SubjectTokenType.ACCESS_TOKEN,
        instanceUrl: fx.org.instanceUrl,
      });
    },
  ],
  [
    'SFDX auth URL',
    true,
    async () =>
      fromSfdxAuthUrl(
        `force://${fx.org.clientId}:${fx.org.clientSecret}:${fx.org.issueRefreshToken()}@${new URL(fx.org.instanceUrl).host}`,
        { loginUrl: fx.org.loginUrl },
      ),
  ],
  [
    'fromEnv (client credentials)',
    true,
    async () =>
      fromEnv({
        SF_CLIENT_ID: fx.org.clientId,
        SF_CLIENT_SECRET: fx.org.clientSecret,
        SF_LOGIN_URL: fx.org.loginUrl,
        SF_INSTANCE_URL: fx.org.instanceUrl,
      }) as WithInfo,
  ],
  [
    'web server flow',
    true,
    async () => {
      const flow = webServerFlowFor(fx.org);
      const { pending, callback } = await loginThrough(flow, fx.org);
      return flow.complete(pending, callback);
    },
  ],
];

describe('getTokenInfo()', () => {
  it.each(grants)('%s: what the token answer said, no token in it', async (_, secret, build) => {
    const session = await build();
    const before = Date.now();
    const token = await session.getToken();
    const info = await session.getTokenInfo();
    expect(info).toMatchObject({
      instanceUrl: fx.org.instanceUrl,
      identityUrl: `${fx.org.loginUrl}/id/${ORG_ID}/${USER_ID}`,
      orgId: ORG_ID,
      userId: USER_ID,
      tokenType: 'Bearer',
      signatureVerified: secret,
    });
    expect(info.scopes.length).toBeGreaterThan(0);
    expect(info.scopes).toContain('api');
    // Issued by the org just now (the web server flow's code was exchanged inside build()).
    expect(info.issuedAt).toBeGreaterThan(before - 60_000);
    expect(info.issuedAt).toBeLessThanOrEqual(Date.now());
    expectNoSecrets(info, [token, fx.org.clientSecret]);
    expect(JSON.stringify(info)).not.toContain('!');
  });

  it('N concurrent cold getTokenInfo() calls make one token request', async () => {
    const session = fx.session();
    const infos = await Promise.all(Array.from({ length: 50 }, () => session.getTokenInfo()));
    expect(fx.org.stats.tokenRequests).toBe(1);
    expect(new Set(infos.map((i) => i.issuedAt)).size).toBe(1);
  });

  it('follows the token: a re-mint after invalidate gives the new answer’s info', async () => {
    const session = fx.session();
    const first = await session.getToken();
    const firstInfo = await session.getTokenInfo();
    await new Promise((resolve) => setTimeout(resolve, 5));
    await session.invalidate(first);
    const secondInfo = await session.getTokenInfo();
    expect(fx.org.stats.tokenRequests).toBe(2);
    expect(secondInfo.issuedAt).toBeGreaterThan(firstInfo.issuedAt as number);
  });

  it('an ID token (scope openid) is readable by name, never shown, never listed', async () => {
    const flow = webServerFlowFor(fx.org, { scopes: ['api', 'openid'] });
    const { pending, callback } = await loginThrough(flow, fx.org);
    const session = await flow.complete(pending, callback);
    const info = await session.getTokenInfo();
    expect(info.scopes).toEqual(['api', 'openid']);
    const idToken = info.idToken as string;
    expect(idToken.split('.')).toHaveLength(3);
    expect(Object.keys(info)).not.toContain('idToken');
    expect({ ...info }).not.toHaveProperty('idToken');
    expectNoSecrets(info, [idToken, idToken.split('.')[2] as string]);
    expect(() => {
      (info as { orgId?: string }).orgId = 'changed';
    }).toThrow(TypeError);
    // What a shared store keeps holds it, and gives it back.
    const record = tokenInfoRecord(info);
    expect(record.idToken).toBe(idToken);
    expect(tokenInfoFromRecord(JSON.parse(JSON.stringify(record)))?.idToken).toBe(idToken);
    expect(tokenInfoFromRecord({ ...record, scopes: 'api' })).toBeUndefined();
    expect(tokenInfoFromRecord({ ...record, issuedAt: 'soon' })).toBeUndefined();
  });

  it('a site login carries the community URL and id; api_instance_url when sent', async () => {
    const site = await startFakeOrg({
      community: { url: 'https://acme.my.site.com/partners', id: '0DB000000000001' },
      apiInstanceUrl: 'https://api.salesforce.com',
    });
    try {
      const session = new JwtBearerAuth({
        clientId: site.clientId,
        username: site.username,
        privateKey: site.jwtPrivateKey as string,
        loginUrl: site.loginUrl,
        instanceUrl: site.instanceUrl,
      });
      expect(await session.getTokenInfo()).toMatchObject({
        communityUrl: 'https://acme.my.site.com/partners',
        communityId: '0DB000000000001',
        apiInstanceUrl: 'https://api.salesforce.com',
        signatureVerified: false,
      });
    } finally {
      await site.close();
    }
  });

  it('StaticTokenAuth answers what it knows: the instance URL', async () => {
    const session = new StaticTokenAuth({
      accessToken: await fx.session().getToken(),
      instanceUrl: fx.org.instanceUrl,
    });
    expect(await session.getTokenInfo()).toEqual({
      instanceUrl: fx.org.instanceUrl,
      scopes: [],
      signatureVerified: false,
    });
  });
});

describe('the answer’s signature', () => {
  it('a forged signature is refused: SignatureMismatchError, nothing cached, the token never used', async () => {
    const session = fx.session({ backoff: false });
    fx.org.failTokenEndpoint({ kind: 'forged-signature' }, { times: 1 });
    const error = await caught(() => session.getToken());
    expect(error).toBeInstanceOf(SignatureMismatchError);
    expect(error).toMatchObject({ code: 'ERR_SIGNATURE_MISMATCH', transient: false });
    expectNoSecrets(error, [fx.org.clientSecret]);
    expect(fx.org.stats).toMatchObject({ tokenRequests: 1, tokensIssued: 1 });
    // Nothing was cached: the next call mints again, and gets a token with a true signature.
    const token = await session.getToken();
    expect(fx.org.stats.tokenRequests).toBe(2);
    expect((await session.getTokenInfo()).signatureVerified).toBe(true);
    await session.identity();
    expect(fx.org.apiRequests.map((r) => r.token)).toEqual([token]);
  });

  it('verifySignature: false takes a rewritten answer and says it was not verified', async () => {
    const session = fx.session({ verifySignature: false });
    fx.org.failTokenEndpoint({ kind: 'forged-signature' }, { times: 1 });
    expect(fx.org.isValidToken(await session.getToken())).toBe(true);
    expect((await session.getTokenInfo()).signatureVerified).toBe(false);
  });

  it('a wrong client secret that the org accepted would not verify: the check is the secret’s', async () => {
    // The fake signs with its own secret; a session holding another one must refuse the answer.
    // (Salesforce refuses a wrong secret outright; this stands for a proxy that forged a token.)
    const session = fx.session({
      backoff: false,
      fetch: (input, init) => {
        const body = new URLSearchParams(String(init?.body));
        body.set('client_secret', fx.org.clientSecret);
        return fetch(input, { ...init, body: body.toString() });
      },
      clientSecret: 'not-the-secret-the-org-signs-with',
    });
    expect(await caught(() => session.getToken())).toBeInstanceOf(SignatureMismatchError);
  });
});

describe('identity()', () => {
  it('GETs the identity URL with the token: typed, cached per token', async () => {
    const session = fx.session();
    const identity = await session.identity();
    expect(identity).toMatchObject({
      identityUrl: `${fx.org.loginUrl}/id/${ORG_ID}/${USER_ID}`,
      orgId: ORG_ID,
      userId: USER_ID,
      username: fx.org.username,
      displayName: 'Admin User',
      urls: { rest: `${fx.org.instanceUrl}/services/data/v{version}/` },
    });
    await Promise.all([session.identity(), session.identity()]);
    expect(fx.org.apiRequests.map((r) => r.path)).toEqual([`/id/${ORG_ID}/${USER_ID}`]);
  });

  it('a revoked token: one 403, one re-mint, one retry', async () => {
    const session = await fx.staleSession();
    const identity = await session.identity();
    expect(identity.orgId).toBe(ORG_ID);
    expect(fx.org.stats.tokenRequests).toBe(1);
    expect(fx.org.stats.apiRequestsByStatus).toEqual({ '403': 1, '200': 1 });
  });

  it('an org that refuses every token: IdentityError 403 after one retry, no loop', async () => {
    const session = fx.session();
    await session.getToken();
    fx.org.rejectApiTokens('invalid-session');
    const error = await caught(() => session.identity());
    expect(error).toBeInstanceOf(IdentityError);
    expect(error).toMatchObject({ code: 'ERR_IDENTITY', status: 403, transient: false });
    // The first token, rejected; one re-mint; its rejection ends it.
    expect(fx.org.stats).toMatchObject({ apiRequests: 2, tokenRequests: 2 });
    // Asked again at once: the re-minted token was rejected before any request succeeded, so the
    // rejection guard holds minting back, and identity() does not ask twice with one token.
    expect(await caught(() => session.identity())).toMatchObject({ status: 403 });
    expect(fx.org.stats).toMatchObject({ apiRequests: 3, tokenRequests: 2 });
  });

  it('a static token that is rejected fails at once: it cannot be replaced', async () => {
    const token = await fx.session().getToken();
    fx.org.revokeAllTokens();
    fx.org.resetStats();
    const session = new StaticTokenAuth({ accessToken: token, instanceUrl: fx.org.instanceUrl });
    expect(await caught(() => session.identity())).toMatchObject({ status: 403 });
    expect(fx.org.stats.apiRequests).toBe(1);
  });

  it('an identity URL on a foreign host is asked at the instance instead: the bearer stays home', async () => {
    const session = fx.session();
    // Seen as the engine sees it: an answer naming an identity URL on another host.
    const info = tokenInfo({
      instanceUrl: fx.org.instanceUrl,
      identityUrl: `${fx.other.url}/id/${ORG_ID}/${USER_ID}`,
      orgId: ORG_ID,
      userId: USER_ID,
      scopes: [],
      signatureVerified: false,
    });
    const { fetchIdentity } = await import('../../src/session/identity.js');
    const identity = await fetchIdentity(
      {
        session,
        infoOf: () => info,
        origins: [],
        fetch: (input, init) => globalThis.fetch(input, init),
        timeoutMs: 5_000,
      },
      undefined,
    );
    expect(identity.userId).toBe(USER_ID);
    expect(fx.other.requests).toHaveLength(0);
    expect(fx.org.apiRequests.map((r) => r.path)).toEqual([`/id/${ORG_ID}/${USER_ID}`]);
  });
});
