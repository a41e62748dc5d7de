import { IdentityError } from '../errors.js';
import { raceAbort } from '../internal/abort.js';
import { concat, readUpTo } from '../internal/bytes.js';
import { scrubbedCause } from '../internal/scrub.js';
import type { TokenInfo } from '../token-info.js';
import type { AuthSession } from './auth-session.js';

/** Options of `identity()`. */
export interface IdentityOptions {
  /** Aborts this call (the token it may wait for is still minted and cached for others). */
  signal?: AbortSignal | undefined;
}

/**
 * Who the session is, from the identity URL (`GET /id/{orgId}/{userId}`) or, when the token
 * answer named none, OpenID Connect's `/services/oauth2/userinfo`. No token in it.
 * @see https://help.salesforce.com/s/articleView?id=sf.remoteaccess_using_openid.htm
 */
export interface Identity {
  /** The identity URL the answer names (`id`, or userinfo's `sub`). */
  readonly identityUrl?: string | undefined;
  readonly userId: string;
  readonly orgId: string;
  /** The Salesforce username (`username`, userinfo's `preferred_username`). */
  readonly username?: string | undefined;
  /** `display_name` (userinfo's `name`). */
  readonly displayName?: string | undefined;
  readonly email?: string | undefined;
  /** Whether the user is active. */
  readonly active?: boolean | undefined;
  /** `user_type`, for example `STANDARD`. */
  readonly userType?: string | undefined;
  readonly language?: string | undefined;
  readonly locale?: string | undefined;
  /** `timezone` (userinfo's `zoneinfo`). */
  readonly timezone?: string | undefined;
  /** The org's API URLs by name (`rest`, `sobjects`, `metadata`…), `{version}` left as is. */
  readonly urls: Readonly<Record<string, string>>;
}

/** Identity answers larger than this are refused. */
export const MAX_IDENTITY_RESPONSE_BYTES = 64 * 1024;

/** What {@link fetchIdentity} needs of a session beyond {@link AuthSession}. */
export interface IdentityHost {
  readonly session: AuthSession;
  /** The info of `token`, as the session knows it. */
  infoOf(token: string): TokenInfo;
  /** Origins, besides the instance's, an identity URL may be on and still get the bearer. */
  readonly origins: readonly string[];
  readonly fetch: typeof fetch;
  readonly timeoutMs: number;
}

/**
 * GETs the session's identity with its token, and on a rejection (401, or the identity
 * endpoints' 403 `Bad_OAuth_Token`) invalidates exactly that token and tries once more with a
 * fresh one, like the adapters. The bearer only goes to the org's origins: an identity URL on
 * another host is asked at the instance instead (Salesforce serves `/id/…` on every org host).
 */
export async function fetchIdentity(
  host: IdentityHost,
  signal: AbortSignal | undefined,
): Promise<Identity> {
  const { session } = host;
  let token = await session.getToken({ signal });
  for (let attempt = 1; ; attempt++) {
    const response = await get(
      host,
      identityEndpoint(session.instanceUrl, host, token),
      token,
      signal,
    );
    if (response.status !== 401 && response.status !== 403) {
      if (!response.ok) {
        await response.body?.cancel().catch(() => {});
        throw new IdentityError(response.status, 'not an identity answer');
      }
      session.confirm?.(token);
      return parseIdentity(await readJson(response, signal), response.status);
    }
    await response.body?.cancel().catch(() => {});
    if (attempt === 2) throw new IdentityError(response.status, 'the token was rejected');
    await session.invalidate(token);
    const fresh = await session.getToken({ signal });
    // The session handed back the rejected token (it cannot mint, or its rejection guard holds):
    // asking again would only be rejected again.
    if (fresh === token) throw new IdentityError(response.status, 'the token was rejected');
    token = fresh;
  }
}

/** Where to ask: the identity URL when it is on an org origin, else the same path on the instance. */
function identityEndpoint(instanceUrl: string, host: IdentityHost, token: string): string {
  const info = host.infoOf(token);
  if (info.identityUrl !== undefined) {
    try {
      const url = new URL(info.identityUrl);
      const allowed = [new URL(instanceUrl).origin, ...host.origins];
      if (allowed.includes(url.origin) && url.username === '' && url.password === '')
        return url.href;
    } catch {
      // Not a URL: fall through to what the ids allow.
    }
  }
  if (info.orgId !== undefined && info.userId !== undefined)
    return `${instanceUrl}/id/${info.orgId}/${info.userId}`;
  return `${instanceUrl}/services/oauth2/userinfo`;
}

async function get(
  host: IdentityHost,
  url: string,
  token: string,
  signal: AbortSignal | undefined,
): Promise<Response> {
  const timeout = AbortSignal.timeout(host.timeoutMs);
  const combined = signal === undefined ? timeout : AbortSignal.any([signal, timeout]);
  try {
    return await host.fetch(url, {
      headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
      // The bearer never follows a redirect: an identity endpoint does not redirect.
      redirect: 'manual',
      signal: combined,
    });
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    throw new IdentityError(0, timeout.aborted ? 'timed out' : 'the request failed', {
      cause: scrubbedCause(error),
    });
  }
}

async function readJson(response: Response, signal: AbortSignal | undefined): Promise<unknown> {
  if (response.body === null) throw new IdentityError(response.status, 'empty answer');
  const reader = response.body.getReader();
  const read = await raceAbort(readUpTo(reader, MAX_IDENTITY_RESPONSE_BYTES), signal);
  if (read.exceeded) {
    reader.cancel().catch(() => {});
    throw new IdentityError(response.status, 'answer too large');
  }
  try {
    return JSON.parse(
      new TextDecoder('utf-8', { fatal: true }).decode(concat(read.chunks, read.size)),
    );
  } catch {
    throw new IdentityError(response.status, 'answer is not JSON');
  }
}

/** The identity URL's JSON, or userinfo's (OpenID Connect names), as an {@link Identity}. */
function parseIdentity(json: unknown, status: number): Identity {
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new IdentityError(status, 'answer is not a JSON object');
  const v = json as Record<string, unknown>;
  const text = (...values: unknown[]) =>
    values.find((value): value is string => typeof value === 'string' && value !== '');
  const userId = text(v.user_id);
  const orgId = text(v.organization_id);
  if (userId === undefined || orgId === undefined)
    throw new IdentityError(status, 'answer has no user_id or organization_id');
  const urls: Record<string, string> = {};
  if (typeof v.urls === 'object' && v.urls !== null) {
    for (const [name, url] of Object.entries(v.urls)) if (typeof url === 'string') urls[name] = url;
  }
  const identity: Record<string, unknown> = { userId, orgId, urls: Object.freeze(urls) };
  const optional = {
    identityUrl: text(v.id, v.sub),
    username: text(v.username, v.preferred_username),
    displayName: text(v.display_name, v.name),
    email: text(v.email),
    userType: text(v.user_type),
    language: text(v.language),
    locale: text(v.locale),
    timezone: text(v.timezone, v.zoneinfo),
    active: typeof v.active === 'boolean' ? v.active : undefined,
  };
  for (const [name, value] of Object.entries(optional))
    if (value !== undefined) identity[name] = value;
  return Object.freeze(identity) as unknown as Identity;
}
