import { createHash, createPublicKey, type KeyObject, randomBytes, verify } from 'node:crypto';

/** An OAuth answer the fake org sends: a status and a JSON body. */
export interface GrantAnswer {
  status: number;
  body: Record<string, unknown>;
}

/**
 * One org behind the fake's login host, as the grants see it: who its tokens are for, and its
 * own connected app (a client id and secret the client credentials grant accepts for it).
 * `undefined` in the methods below is the org's first tenant, the one `startFakeOrg` describes.
 */
export interface GrantTenant {
  readonly clientId: string;
  readonly clientSecret: string;
}

/** What the grant logic needs from the org around it. */
export interface GrantHost {
  readonly clientId: string;
  readonly clientSecret: string;
  /** `http://127.0.0.1:PORT`, known once the server listens. */
  loginUrl(): string;
  /**
   * Issues an access token (valid at once) with Salesforce's success shape, for `tenant`, signed
   * with `signingSecret` (the secret of the app that asked); extra fields merged.
   */
  issue(
    extra?: Record<string, unknown>,
    tenant?: GrantTenant,
    signingSecret?: string,
  ): { accessToken: string; body: Record<string, unknown> };
  /** The tenant whose user `username` is, if any (the JWT bearer grant's `sub`). */
  tenantOfUser(username: string): GrantTenant | undefined;
  /** The tenant whose own connected app `clientId` is, if any. */
  tenantOfClient(clientId: string): GrantTenant | undefined;
  /** Makes access tokens invalid. */
  revokeAccessTokens(tokens: Iterable<string>): void;
  /**
   * Counts a login of `tenant`'s user, or answers false when its login rate is used up (Salesforce's
   * "login rate exceeded"): asked last, right before a grant issues anything.
   */
  mayLogin(tenant?: GrantTenant): boolean;
}

/** How the fake org's grants behave; see `FakeOrgOptions`. */
export interface GrantOptions {
  users: readonly string[];
  audience: string | undefined;
  jwtPublicKey: KeyObject;
  refreshTokenRotation: boolean;
  requireClientSecret: boolean;
  /** How many refresh-token approvals one user keeps; the oldest is revoked past it. */
  refreshTokenApprovals: number;
}

/** A refresh-token family: the live token, the ones rotated away, and the access tokens issued. */
interface Family {
  current: string;
  readonly retired: Set<string>;
  readonly accessTokens: Set<string>;
  revoked: boolean;
  /** Whose tokens it mints (`undefined`: the org's first tenant). */
  readonly tenant: GrantTenant | undefined;
}

interface AuthorizationCode {
  readonly challenge: string;
  readonly redirectUri: string;
  readonly scopes: readonly string[];
  used: boolean;
}

const error = (status: number, code: string, description: string): GrantAnswer => ({
  status,
  body: { error: code, error_description: description },
});
const invalidGrant = (description: string) => error(400, 'invalid_grant', description);
const RATE_EXCEEDED = 'login rate exceeded';

/** Counters the grant logic keeps; merged into the org's stats. */
export interface GrantStats {
  /** Refresh-token families revoked because a rotated-away token was presented. */
  familyRevocations: number;
  /** Tokens revoked through `/services/oauth2/revoke`. */
  revocations: number;
  /** Refresh-token families revoked because their user approved the app once too often. */
  approvalRevocations: number;
}

/**
 * The grants of the fake org, validated the way Salesforce validates them: client credentials,
 * JWT bearer (signature, iss, sub, aud, exp), refresh token with rotation and family revocation on
 * reuse, authorization code with PKCE S256, token exchange, and revocation.
 */
export class FakeGrants {
  readonly stats: GrantStats = { familyRevocations: 0, revocations: 0, approvalRevocations: 0 };
  readonly #host: GrantHost;
  readonly #options: GrantOptions;
  readonly #families = new Map<string, Family>();
  /** Each user's live families (approvals of the app), oldest first; the key is the tenant. */
  readonly #approvals = new Map<GrantTenant | undefined, Family[]>();
  readonly #codes = new Map<string, AuthorizationCode>();
  readonly #subjectTokens = new Map<string, string>();
  #denial: string | undefined;

  constructor(host: GrantHost, options: GrantOptions) {
    this.#host = host;
    this.#options = options;
  }

  /** Answers one token request. */
  token(params: URLSearchParams): GrantAnswer {
    switch (params.get('grant_type')) {
      case 'client_credentials':
        return this.#clientCredentials(params);
      case 'urn:ietf:params:oauth:grant-type:jwt-bearer':
        return this.#jwtBearer(params);
      case 'refresh_token':
        return this.#refresh(params);
      case 'authorization_code':
        return this.#authorizationCode(params);
      case 'urn:ietf:params:oauth:grant-type:token-exchange':
        return this.#tokenExchange(params);
      default:
        return error(400, 'unsupported_grant_type', 'grant type not supported');
    }
  }

  /**
   * A new refresh-token family, as if a user (of `tenant`) had approved the app. Salesforce keeps
   * at most a few approvals per user and app (5): the oldest live family is revoked on the next.
   */
  issueRefreshToken(tenant?: GrantTenant): string {
    const token = refreshTokenValue();
    const family: Family = {
      current: token,
      retired: new Set(),
      accessTokens: new Set(),
      revoked: false,
      tenant,
    };
    this.#families.set(token, family);
    const approved = (this.#approvals.get(tenant) ?? []).filter((f) => !f.revoked);
    approved.push(family);
    while (approved.length > this.#options.refreshTokenApprovals) {
      this.#revokeFamily(approved.shift() as Family);
      this.stats.approvalRevocations++;
    }
    this.#approvals.set(tenant, approved);
    return token;
  }

  /** Whether `token` is a refresh token the org currently accepts. */
  isValidRefreshToken(token: string): boolean {
    const family = this.#families.get(token);
    return family !== undefined && !family.revoked && family.current === token;
  }

  /** Lets token exchange accept `token` as a subject token of `type`. */
  addSubjectToken(token: string, type: string): void {
    this.#subjectTokens.set(token, type);
  }

  /** Makes the next authorization answer the callback with `error` instead of a code. */
  denyNextAuthorization(errorCode: string): void {
    this.#denial = errorCode;
  }

  /**
   * The authorize endpoint: validates the request like Salesforce. Asked (GET), a valid request
   * answers 200 so the org shows its approval page; with the user's decision (the page's POST) it
   * answers where the browser goes next: the callback with a code, or with an error.
   */
  authorize(
    query: URLSearchParams,
    decision: 'ask' | 'allow' | 'deny',
  ): {
    status: number;
    location?: string;
    body?: Record<string, unknown>;
  } {
    const redirectUri = query.get('redirect_uri');
    if (query.get('client_id') !== this.#host.clientId) {
      return {
        status: 400,
        body: { error: 'invalid_client_id', error_description: 'client identifier invalid' },
      };
    }
    if (redirectUri === null || !URL.canParse(redirectUri)) {
      return {
        status: 400,
        body: {
          error: 'redirect_uri_mismatch',
          error_description: 'redirect_uri must match configuration',
        },
      };
    }
    const callback = new URL(redirectUri);
    const state = query.get('state');
    if (state !== null) callback.searchParams.set('state', state);
    const fail = (code: string, description: string) => {
      callback.searchParams.set('error', code);
      callback.searchParams.set('error_description', description);
      return { status: 302, location: callback.href };
    };
    if (query.get('response_type') !== 'code')
      return fail('unsupported_response_type', 'response type not supported');
    const challenge = query.get('code_challenge');
    if (
      query.get('code_challenge_method') !== 'S256' ||
      challenge === null ||
      !/^[\w-]{43}$/.test(challenge)
    ) {
      return fail('invalid_request', 'invalid code challenge');
    }
    // A valid request shows the user the approval page; its buttons come back here with a decision.
    if (decision === 'ask') return { status: 200 };
    if (decision === 'deny') return fail('access_denied', 'end-user denied authorization');
    if (this.#denial !== undefined) {
      const denial = this.#denial;
      this.#denial = undefined;
      return fail(denial, 'end-user denied authorization');
    }
    const code = `aPrx${randomBytes(24).toString('base64url')}`;
    const scopes = (query.get('scope') ?? 'api').split(' ').filter(Boolean);
    this.#codes.set(code, { challenge, redirectUri, scopes, used: false });
    callback.searchParams.set('code', code);
    return { status: 302, location: callback.href };
  }

  /** `/services/oauth2/revoke`: a refresh token takes its family with it; an access token goes alone. */
  revoke(params: URLSearchParams, accessTokenIsValid: (token: string) => boolean): GrantAnswer {
    const token = params.get('token') ?? '';
    const family = this.#families.get(token);
    if (family !== undefined && !family.revoked) {
      this.#revokeFamily(family);
      this.stats.revocations++;
      return { status: 200, body: {} };
    }
    if (accessTokenIsValid(token)) {
      this.#host.revokeAccessTokens([token]);
      this.stats.revocations++;
      return { status: 200, body: {} };
    }
    return error(400, 'invalid_token', 'invalid token');
  }

  /** The app that asked (the org's own, or a tenant's), or the refusal. */
  #checkClient(
    params: URLSearchParams,
    secretRequired: boolean,
  ): GrantAnswer | { app: GrantTenant; tenant: GrantTenant | undefined } {
    const id = params.get('client_id') ?? '';
    const tenant = id === this.#host.clientId ? undefined : this.#host.tenantOfClient(id);
    const app = tenant ?? this.#host;
    if (id !== app.clientId) return error(400, 'invalid_client_id', 'client identifier invalid');
    const secret = params.get('client_secret');
    if (secret === null ? secretRequired : secret !== app.clientSecret) {
      return error(400, 'invalid_client', 'invalid client credentials');
    }
    return { app, tenant };
  }

  #clientCredentials(params: URLSearchParams): GrantAnswer {
    const client = this.#checkClient(params, true);
    if ('status' in client) return client;
    if (!this.#host.mayLogin(client.tenant)) return invalidGrant(RATE_EXCEEDED);
    return { status: 200, body: this.#host.issue({}, client.tenant, client.app.clientSecret).body };
  }

  #jwtBearer(params: URLSearchParams): GrantAnswer {
    const parts = (params.get('assertion') ?? '').split('.');
    const [header, payload, signature] = parts;
    if (parts.length !== 3 || !header || !payload || !signature)
      return invalidGrant('invalid assertion');
    let claims: { iss?: unknown; sub?: unknown; aud?: unknown; exp?: unknown };
    try {
      if (JSON.parse(Buffer.from(header, 'base64url').toString()).alg !== 'RS256') {
        return invalidGrant('invalid assertion');
      }
      claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
    } catch {
      return invalidGrant('invalid assertion');
    }
    const signed = verify(
      'sha256',
      Buffer.from(`${header}.${payload}`),
      this.#options.jwtPublicKey,
      Buffer.from(signature, 'base64url'),
    );
    if (!signed) return invalidGrant('invalid assertion');
    if (claims.iss !== this.#host.clientId)
      return error(400, 'invalid_client_id', 'client identifier invalid');
    // Salesforce checks `aud` against its login host (production, sandbox or the site), never
    // the host the assertion was POSTed to.
    const audience = this.#options.audience ?? 'https://login.salesforce.com';
    if (claims.aud !== audience) {
      // A My Domain as `aud` (this org's own host, or any *.my.salesforce.com) gets Salesforce's
      // misleading answer, not the audience one.
      const myDomain =
        claims.aud === this.#host.loginUrl() ||
        (typeof claims.aud === 'string' &&
          /^https:\/\/[^/]+\.my\.salesforce\.com\/?$/i.test(claims.aud));
      return invalidGrant(myDomain ? "user hasn't approved this consumer" : 'audience is invalid');
    }
    // An `exp` in the past is refused; one far ahead is accepted, as Salesforce does (sfdx-core
    // sends epoch milliseconds where seconds are due).
    const now = Date.now() / 1000;
    if (typeof claims.exp !== 'number' || !Number.isFinite(claims.exp) || claims.exp <= now) {
      return invalidGrant('expired authorization code');
    }
    const tenant =
      typeof claims.sub === 'string' && !this.#options.users.includes(claims.sub)
        ? this.#host.tenantOfUser(claims.sub)
        : undefined;
    if (
      typeof claims.sub !== 'string' ||
      (!this.#options.users.includes(claims.sub) && tenant === undefined)
    ) {
      return invalidGrant("user hasn't approved this consumer");
    }
    if (!this.#host.mayLogin(tenant)) return invalidGrant(RATE_EXCEEDED);
    return { status: 200, body: this.#host.issue({}, tenant).body };
  }

  #refresh(params: URLSearchParams): GrantAnswer {
    const client = this.#checkClient(params, this.#options.requireClientSecret);
    if ('status' in client) return client;
    const presented = params.get('refresh_token') ?? '';
    const family = this.#families.get(presented);
    if (family === undefined || family.revoked) return invalidGrant('expired access/refresh token');
    if (family.current !== presented) {
      // A rotated-away token came back: someone holds a copy. Salesforce revokes the whole family.
      this.#revokeFamily(family);
      this.stats.familyRevocations++;
      return invalidGrant('expired access/refresh token');
    }
    // Refused before anything rotates: the token presented stays the live one.
    if (!this.#host.mayLogin(family.tenant)) return invalidGrant(RATE_EXCEEDED);
    const extra: Record<string, unknown> = {};
    if (this.#options.refreshTokenRotation) {
      const next = refreshTokenValue();
      family.retired.add(family.current);
      family.current = next;
      this.#families.set(next, family);
      extra.refresh_token = next;
    }
    const { accessToken, body } = this.#host.issue(extra, family.tenant, client.app.clientSecret);
    family.accessTokens.add(accessToken);
    return { status: 200, body };
  }

  #authorizationCode(params: URLSearchParams): GrantAnswer {
    const rejected = this.#checkClient(params, this.#options.requireClientSecret);
    if ('status' in rejected) return rejected;
    const grant = this.#codes.get(params.get('code') ?? '');
    if (grant === undefined || grant.used) return invalidGrant('expired authorization code');
    grant.used = true;
    if (params.get('redirect_uri') !== grant.redirectUri)
      return invalidGrant('redirect_uri mismatch');
    const verifier = params.get('code_verifier') ?? '';
    const challenge = createHash('sha256').update(verifier).digest('base64url');
    if (!/^[A-Za-z0-9._~-]{43,128}$/.test(verifier) || challenge !== grant.challenge) {
      return invalidGrant('invalid code verifier');
    }
    if (!this.#host.mayLogin()) return invalidGrant(RATE_EXCEEDED);
    const extra: Record<string, unknown> = { scope: grant.scopes.join(' ') };
    if (grant.scopes.includes('openid')) extra.id_token = idTokenFor(this.#host.clientId);
    let family: Family | undefined;
    if (grant.scopes.includes('refresh_token') || grant.scopes.includes('offline_access')) {
      const refreshToken = this.issueRefreshToken();
      family = this.#families.get(refreshToken);
      extra.refresh_token = refreshToken;
    }
    const { accessToken, body } = this.#host.issue(extra);
    family?.accessTokens.add(accessToken);
    return { status: 200, body };
  }

  #tokenExchange(params: URLSearchParams): GrantAnswer {
    const rejected = this.#checkClient(params, false);
    if ('status' in rejected) return rejected;
    const type = this.#subjectTokens.get(params.get('subject_token') ?? '');
    if (type === undefined || type !== params.get('subject_token_type')) {
      return invalidGrant('invalid subject token');
    }
    if (!this.#host.mayLogin()) return invalidGrant(RATE_EXCEEDED);
    return {
      status: 200,
      body: this.#host.issue({ issued_token_type: 'urn:ietf:params:oauth:token-type:access_token' })
        .body,
    };
  }

  #revokeFamily(family: Family): void {
    family.revoked = true;
    this.#host.revokeAccessTokens(family.accessTokens);
  }
}

/** An OpenID Connect ID token's shape: a JWT the fake does not sign (no test verifies it). */
function idTokenFor(clientId: string): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  return `${part({ alg: 'RS256', kid: '226' })}.${part({ aud: clientId, iat: now, exp: now + 300 })}.${randomBytes(64).toString('base64url')}`;
}

function refreshTokenValue(): string {
  return `5Aep${randomBytes(40).toString('base64url')}`;
}

/** The public half of a PEM or `KeyObject` private or public key. */
export function publicKeyOf(key: string | KeyObject): KeyObject {
  return typeof key !== 'string' && key.type === 'public' ? key : createPublicKey(key);
}
