/**
 * What a token answer says about the session besides the token: who it is (org, user), what it
 * may do (scopes), when it was issued, and whether the answer's signature was checked.
 */

/**
 * What the token endpoint said about the current token, without the token itself. `orgId` and
 * `userId` come from the identity URL (`…/id/{orgId}/{userId}`); `orgId` is what the Pub/Sub API
 * wants as `tenantid`. `idToken` (an OpenID Connect ID token, when `openid` was asked for) is a
 * token too: it is readable as `info.idToken` but not listed, so `util.inspect`, `console.log`,
 * `JSON.stringify` and `{ ...info }` never show it.
 *
 * @example
 * ```ts
 * const { orgId, userId, scopes } = await session.getTokenInfo();
 * ```
 */
export interface TokenInfo {
  /** The instance URL the token is for. */
  readonly instanceUrl: string;
  /** The identity URL (`id`), `https://login.salesforce.com/id/{orgId}/{userId}`. */
  readonly identityUrl?: string | undefined;
  /** The org's id (15 or 18 characters, `00D…`), from the identity URL. */
  readonly orgId?: string | undefined;
  /** The user's id (`005…`), from the identity URL. */
  readonly userId?: string | undefined;
  /** When Salesforce issued the token (`issued_at`), epoch milliseconds. */
  readonly issuedAt?: number | undefined;
  /** The granted scopes (`scope`, space-separated on the wire); empty when the answer had none. */
  readonly scopes: readonly string[];
  /** The `token_type`, `Bearer` from Salesforce. */
  readonly tokenType?: string | undefined;
  /**
   * Whether the answer's `signature` was verified against the client secret: false when the
   * grant has no secret (JWT bearer, a public app), the answer had no signature, or
   * `verifySignature` is off. A signature that does not match never gets this far.
   */
  readonly signatureVerified: boolean;
  /** The OpenID Connect ID token (`id_token`). A secret: never listed, never shown. */
  readonly idToken?: string | undefined;
  /** The Experience Cloud site URL (`sfdc_community_url`), for a site login. */
  readonly communityUrl?: string | undefined;
  /** The Experience Cloud site id (`sfdc_community_id`). */
  readonly communityId?: string | undefined;
  /** The `api_instance_url`, when Salesforce sends one. */
  readonly apiInstanceUrl?: string | undefined;
}

/** The fields of a {@link TokenInfo} as plain data: what a shared store keeps (encrypted). */
export type TokenInfoRecord = {
  -readonly [K in keyof TokenInfo]: K extends 'scopes' ? string[] : TokenInfo[K];
};

/** A Salesforce id: 15 characters, or 18 with the case-safe suffix. */
const SALESFORCE_ID = /^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$/;

/** `orgId` and `userId` from an identity URL, `…/id/{orgId}/{userId}`; empty when it is not one. */
export function idsOf(identityUrl: string | undefined): { orgId?: string; userId?: string } {
  if (identityUrl === undefined) return {};
  let path: string;
  try {
    path = new URL(identityUrl).pathname;
  } catch {
    return {};
  }
  const match = /\/id\/([^/]+)\/([^/]+)\/?$/.exec(path);
  if (match === null) return {};
  const [, orgId = '', userId = ''] = match;
  if (!SALESFORCE_ID.test(orgId) || !SALESFORCE_ID.test(userId)) return {};
  return { orgId, userId };
}

const STRING_FIELDS = [
  'identityUrl',
  'orgId',
  'userId',
  'tokenType',
  'communityUrl',
  'communityId',
  'apiInstanceUrl',
] as const;

/**
 * A {@link TokenInfo} from its fields: frozen in effect (writes fail), `idToken` reachable by
 * name only. `util.inspect` formats a Proxy's target without running its traps, under every
 * option, and the target holds no `idToken`; `JSON.stringify` and spreading list the target's keys.
 */
export function tokenInfo(fields: TokenInfoRecord): TokenInfo {
  const { idToken, ...shown } = fields;
  const target: Record<string, unknown> = { instanceUrl: shown.instanceUrl };
  for (const name of STRING_FIELDS) if (shown[name] !== undefined) target[name] = shown[name];
  if (shown.issuedAt !== undefined) target.issuedAt = shown.issuedAt;
  target.scopes = Object.freeze([...shown.scopes]);
  target.signatureVerified = shown.signatureVerified;
  Object.freeze(target);
  if (idToken === undefined) return target as unknown as TokenInfo;
  return new Proxy(target, {
    get: (t, key) => (key === 'idToken' ? idToken : Reflect.get(t, key)),
  }) as unknown as TokenInfo;
}

/** The fields of `info` as plain data, `idToken` included: for a store, never for output. */
export function tokenInfoRecord(info: TokenInfo): TokenInfoRecord {
  const record: TokenInfoRecord = {
    instanceUrl: info.instanceUrl,
    scopes: [...info.scopes],
    signatureVerified: info.signatureVerified,
  };
  for (const name of STRING_FIELDS) if (info[name] !== undefined) record[name] = info[name];
  if (info.issuedAt !== undefined) record.issuedAt = info.issuedAt;
  if (info.idToken !== undefined) record.idToken = info.idToken;
  return record;
}

/**
 * A {@link TokenInfo} from what a shared store gave back, or `undefined` when it is not one this
 * library wrote (a field of the wrong type): the token is still used, its info is not trusted.
 */
export function tokenInfoFromRecord(value: unknown): TokenInfo | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.instanceUrl !== 'string' || typeof v.signatureVerified !== 'boolean')
    return undefined;
  if (!Array.isArray(v.scopes) || !v.scopes.every((s) => typeof s === 'string')) return undefined;
  for (const name of [...STRING_FIELDS, 'idToken'])
    if (v[name] !== undefined && typeof v[name] !== 'string') return undefined;
  if (v.issuedAt !== undefined && !Number.isFinite(v.issuedAt)) return undefined;
  return tokenInfo(v as TokenInfoRecord);
}

/** What is known of a token nobody described: its instance URL. */
export function bareTokenInfo(instanceUrl: string): TokenInfo {
  return tokenInfo({ instanceUrl, scopes: [], signatureVerified: false });
}

/**
 * The options key under which a session built from a token answer (the web server flow's
 * `complete`) gets that answer's {@link TokenInfo}: a symbol, so it stays out of the public options.
 */
export const seedInfo: unique symbol = Symbol('cirrus-auth.seedInfo');
