#!/usr/bin/env node
/**
 * `cirrus-auth`: a Salesforce token and one authenticated request from the terminal, configured by
 * the same `SF_*` variables as `fromEnv()`. Never prints a secret; errors are one line with the
 * error code, and a hint where one helps (`--debug` adds the stack).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { authFetch } from './adapters/fetch.js';
import {
  AuthError,
  ConfigError,
  OAuthError,
  type OAuthErrorReason,
  TokenStoreError,
} from './errors.js';
import { type EnvGrant, fromEnv, selectGrant } from './grants/from-env.js';

const USAGE = `Usage:
  cirrus-auth token [--json | --header]     print an access token for the org in SF_* variables
  cirrus-auth request <path> [-X METHOD] [-d BODY | -d @file] [-H 'Name: value']... [--json]
                                            one authenticated request (retried once on 401)
  cirrus-auth check [--json]                which grant the environment selects, and whether it mints
  cirrus-auth help [command]                this text, or one command's
Options: --json (output and errors as JSON), --debug (stack traces), --help, --version.
Variables: see fromEnv in the README.`;

/** `cirrus-auth help <command>` and `cirrus-auth <command> --help`. */
const COMMAND_HELP: Record<string, string> = {
  token: `Usage: cirrus-auth token [--json | --header]
Prints an access token for the org the SF_* variables describe (see fromEnv in the README).
  --header  as an "Authorization: Bearer …" line
  --json    as JSON: access_token, instance_url, org_id, user_id, scopes, identity`,
  request: `Usage: cirrus-auth request <path> [-X METHOD] [-d BODY | -d @file] [-H 'Name: value']... [--json]
Sends one request to the org's instance with the session, retried once if the token is rejected.
The status goes to stderr, the body to stdout.
  -X, --method   the method (default GET, or POST with -d)
  -d, --data     the body, or @file to read it from a file
  -H, --headers  a header, 'Name: value'; repeatable
  --json         status, headers and body as one JSON object on stdout`,
  check: `Usage: cirrus-auth check [--json]
Names the grant the environment selects and mints one token, printing no secret.
  --json  as JSON: grant, instance_url, minted_ms`,
  help: `Usage: cirrus-auth help [command]
Prints the usage, or one command's: token, request, check.`,
};

/** The exit codes: 0 success, 1 an auth or HTTP failure, 2 bad usage. */
const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

const OPTIONS = {
  json: { type: 'boolean' },
  header: { type: 'boolean' },
  method: { type: 'string', short: 'X' },
  data: { type: 'string', short: 'd' },
  headers: { type: 'string', short: 'H', multiple: true },
  debug: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
} as const;

/** The arguments, or a UsageError in our words: Node's parseArgs text may quote what was typed. */
function parsed(argv: string[]) {
  try {
    return parseArgs({ args: argv, allowPositionals: true, options: OPTIONS });
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const named = argv.find((a) => a.startsWith('-') && !isKnownOption(a));
    const shown = named !== undefined && /^--?[A-Za-z][\w-]{0,30}$/.test(named) ? ` ${named}` : '';
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw new UsageError(`unknown option${shown}`);
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      throw new UsageError('an option that takes a value (-X, -d, -H) was given none');
    }
    throw new UsageError('the arguments could not be read');
  }
}

function isKnownOption(arg: string): boolean {
  const name = arg.replace(/^--?/, '').replace(/=.*$/, '');
  return Object.entries(OPTIONS).some(
    ([long, o]) => long === name || ('short' in o && o.short === name),
  );
}

/** The package's version, from its package.json (next to dist/ once installed). */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version?: unknown;
  };
  return String(pkg.version);
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parsed(argv);
  const [command, ...rest] = positionals;
  if (values.version) {
    process.stdout.write(`cirrus-auth ${version()}\n`);
    return EXIT.ok;
  }
  if (command === 'help') {
    const topic = rest[0];
    if (topic !== undefined && COMMAND_HELP[topic] === undefined) {
      throw new UsageError(`no help for "${topic}": the commands are token, request, check`);
    }
    process.stdout.write(`${topic === undefined ? USAGE : COMMAND_HELP[topic]}\n`);
    return EXIT.ok;
  }
  if (values.help && command !== undefined && COMMAND_HELP[command] !== undefined) {
    process.stdout.write(`${COMMAND_HELP[command]}\n`);
    return EXIT.ok;
  }
  if (values.help || command === undefined) {
    process.stdout.write(`${USAGE}\n`);
    return values.help ? EXIT.ok : EXIT.usage;
  }
  const json = values.json === true;
  switch (command) {
    case 'token':
      return token(json, values.header === true);
    case 'request':
      return request(rest[0], values.method, values.data, values.headers ?? [], json);
    case 'check':
      return check(json);
    default:
      throw new UsageError(`unknown command "${command}": the commands are token, request, check`);
  }
}

async function token(json: boolean, header: boolean): Promise<number> {
  if (json && header) throw new UsageError('--json and --header exclude each other');
  const session = envSession();
  const accessToken = await session.getToken();
  if (header) {
    process.stdout.write(`Authorization: Bearer ${accessToken}\n`);
  } else if (json) {
    const info = await session.getTokenInfo();
    // Who the token is: asked once, with the same retry-once as the adapters; null if refused.
    const identity = await session.identity().catch(() => undefined);
    const out = {
      access_token: accessToken,
      instance_url: session.instanceUrl,
      org_id: info.orgId ?? null,
      user_id: info.userId ?? null,
      scopes: info.scopes,
      identity:
        identity === undefined
          ? null
          : {
              user_id: identity.userId,
              organization_id: identity.orgId,
              username: identity.username ?? null,
            },
    };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } else {
    process.stdout.write(`${accessToken}\n`);
  }
  return EXIT.ok;
}

async function request(
  path: string | undefined,
  method: string | undefined,
  data: string | undefined,
  headerArgs: string[],
  json: boolean,
): Promise<number> {
  if (path === undefined)
    throw new UsageError('request needs a path, for example /services/data/v62.0/limits');
  const headers = new Headers();
  for (const [index, line] of headerArgs.entries()) {
    const colon = line.indexOf(':');
    const name = colon < 1 ? '' : line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    // Never echo the argument, nor let Headers quote it in its own error: it may well hold a token.
    if (!HEADER_NAME.test(name))
      throw new UsageError(`-H number ${index + 1} is not of the form 'Name: value'`);
    if (!HEADER_VALUE.test(value)) {
      throw new UsageError(
        `-H ${name}: the value has characters a header cannot carry (control characters, CR/LF, or beyond Latin-1)`,
      );
    }
    headers.append(name, value);
  }
  let body: string | undefined;
  if (data !== undefined) {
    body = data.startsWith('@') ? readBodyFile(data.slice(1)) : data;
    if (!headers.has('content-type'))
      headers.set('content-type', isJson(body) ? 'application/json' : 'text/plain');
  }
  const sfFetch = authFetch(envSession());
  const init: RequestInit = { method: method ?? (body === undefined ? 'GET' : 'POST'), headers };
  if (body !== undefined) init.body = body;
  const response = await sfFetch(path, init);
  process.stderr.write(`HTTP ${response.status} ${response.statusText}\n`);
  const text = await response.text();
  if (json) {
    const out = {
      status: response.status,
      headers: Object.fromEntries(response.headers),
      body: isJson(text) ? JSON.parse(text) : text,
    };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } else process.stdout.write(text.endsWith('\n') || text === '' ? text : `${text}\n`);
  return response.ok ? EXIT.ok : EXIT.failure;
}

/** A `-d @file` body; a file that cannot be read is one line naming the reason, not a stack. */
function readBodyFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    throw new InputError(
      `-d @file: the file cannot be read${typeof code === 'string' && /^E[A-Z]+$/.test(code) ? ` (${code})` : ''}`,
    );
  }
}

async function check(json: boolean): Promise<number> {
  const { grant } = selectGrant(process.env);
  if (!json) process.stdout.write(`grant: ${grant}\n`);
  const session = envSession();
  if (!json) process.stdout.write(`instance: ${session.instanceUrl}\n`);
  const started = performance.now();
  await session.getToken();
  const ms = Math.round(performance.now() - started);
  if (json) {
    const out = { grant, instance_url: session.instanceUrl, minted_ms: ms };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } else process.stdout.write(`token: minted in ${ms} ms\n`);
  return EXIT.ok;
}

class UsageError extends Error {}

/** Input the user named that cannot be used (a `-d @file` that cannot be read): one line, exit 1. */
class InputError extends Error {}

/** A header name: an RFC 9110 token. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** A header value: visible ASCII, space, tab and obs-text (RFC 9110 field-value), nothing else. */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * The session the environment describes. Under Refresh Token Rotation each run gets a new refresh
 * token: kept in SF_REFRESH_TOKEN_FILE when set, else the user is told the variable is now dead
 * (the token itself is never printed).
 */
function envSession() {
  const { grant } = selectGrant(process.env);
  const refreshing = grant === 'refresh-token' || grant === 'sfdx-auth-url';
  if (!refreshing || process.env.SF_REFRESH_TOKEN_FILE) return fromEnv(process.env);
  return fromEnv(process.env, {
    onRefreshTokenRotated: () => {
      process.stderr.write(
        'cirrus-auth: warning: the org rotated the refresh token, so the one in your environment is now dead; set SF_REFRESH_TOKEN_FILE=path to keep rotated tokens\n',
      );
    },
  });
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** One line of advice per {@link OAuthErrorReason}; never a value from the environment. */
const REASON_HINTS: Partial<Record<OAuthErrorReason, (grant: EnvGrant | undefined) => string>> = {
  'invalid-client': () =>
    "check SF_CLIENT_ID and SF_CLIENT_SECRET: the connected app's consumer key and secret",
  'user-not-approved': (grant) =>
    grant === 'jwt-bearer'
      ? "the user is not pre-authorized for the app (Admin approved users, with the user's profile or a permission set), or the assertion's audience is wrong"
      : 'the user has not approved the app: log in through the app again',
  'ip-restricted': () =>
    "this machine's IP address is outside the app's or the user's profile's Login IP Ranges: relax the app's IP Relaxation policy or add the range",
  'inactive-user': () => 'the Salesforce user is deactivated: an admin must reactivate it',
  'inactive-org': () => 'the org is locked, expired or deleted',
  'rate-exceeded': () =>
    'the user hit the login rate limit (about 3,600 logins an hour): wait, and share one session per process',
  'audience-invalid': () =>
    'the JWT audience must be https://login.salesforce.com (production and My Domain) or https://test.salesforce.com (sandboxes); set SF_LOGIN_URL to the host you log in through',
  'assertion-expired': () =>
    "the JWT expired before Salesforce read it: check this machine's clock",
  'invalid-assertion': () =>
    'the JWT is not signed with the key whose certificate is on the connected app (SF_PRIVATE_KEY)',
  'domain-not-supported': () =>
    'client credentials only work on your My Domain: set SF_LOGIN_URL to https://NAME.my.salesforce.com',
  'run-as-user-missing': () =>
    'the connected app has no Run As user for the client credentials flow: set one in its policies',
  'refresh-token-expired': () =>
    'the refresh token is expired, revoked or was rotated away: log in again',
  'unsupported-grant-type': () =>
    'the connected app does not allow this grant: enable it in its OAuth settings',
  'authentication-failure': (grant) =>
    grant === 'client-credentials'
      ? 'client credentials only work on your My Domain (SF_LOGIN_URL), with a Run As user set on the app'
      : 'Salesforce refused the credentials',
};

/** A line of advice for the errors people hit first; never a value from the environment. */
function hint(error: unknown, grant: EnvGrant | undefined): string | undefined {
  if (error instanceof ConfigError) {
    const malformed = !error.problem.startsWith('is required');
    if ((error.option === 'SF_LOGIN_URL' || error.option === 'SF_INSTANCE_URL') && malformed) {
      return `${error.option} is a base URL: https://NAME.my.salesforce.com, with https:// and no /services/oauth2/… path`;
    }
    if (error.option === 'SF_LOGIN_URL' && grant === 'client-credentials') {
      return 'client credentials need your My Domain URL as SF_LOGIN_URL (https://NAME.my.salesforce.com)';
    }
    if (error.option === 'env')
      return 'set the SF_* variables of one grant; see fromEnv in the README';
    if (error.option === 'SF_REFRESH_TOKEN_FILE')
      return 'SF_REFRESH_TOKEN_FILE must name a file in a directory that exists and that you can write: each run stores the rotated refresh token there';
    return undefined;
  }
  if (error instanceof TokenStoreError && error.problem === 'lock-wait') {
    return 'another run is refreshing with the same SF_REFRESH_TOKEN_FILE; if none is, delete the .lock file next to it';
  }
  if (error instanceof OAuthError) return REASON_HINTS[error.reason]?.(grant);
  if (error instanceof AuthError && error.code === 'ERR_SIGNATURE_MISMATCH')
    return "the token answer's signature does not match SF_CLIENT_SECRET: check the secret, or whether a proxy rewrites token answers";
  if (error instanceof AuthError && error.code === 'ERR_TRANSPORT')
    return 'check network access to SF_LOGIN_URL';
  if (error instanceof AuthError && error.code === 'ERR_INSTANCE_URL_MISMATCH') {
    return "SF_INSTANCE_URL must be the org's instance URL";
  }
  return undefined;
}

/**
 * The one line printed for a failure. An `AuthError`'s message never holds a secret; any other
 * error's may quote a value (undici's header validation quotes the whole header, `Bearer <token>`
 * included), so of those only the name and Node's `code` are printed, and the message only for a
 * system error (Node builds it from the code, the call and the path) or undici's fixed
 * "fetch failed".
 */
function failureLine(error: unknown): string {
  if (error instanceof AuthError) return `${error.code}: ${error.message}`;
  if (!(error instanceof Error)) return 'failed (the error is not shown)';
  const code = codeOf(error);
  if (code !== undefined && typeof (error as { syscall?: unknown }).syscall === 'string')
    return error.message;
  const cause = codeOf(error.cause);
  if (error.message === 'fetch failed')
    return `${error.name}: fetch failed${cause ? ` (${cause})` : ''}`;
  return `${error.name}${code ? ` ${code}` : ''}: its message is not shown, as it may quote a secret (--debug shows where it was thrown)`;
}

/** An error as `--json` prints it, on stdout: `{ "error": { code, reason, message, hint } }`. */
function writeJsonError(
  code: string,
  reason: string | undefined,
  message: string,
  advice: string | undefined,
): void {
  const error = { code, reason: reason ?? null, message, hint: advice ?? null };
  process.stdout.write(`${JSON.stringify({ error }, null, 2)}\n`);
}

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && /^[\w.-]{1,64}$/.test(code) ? code : undefined;
}

const argv = process.argv.slice(2);
main(argv).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const debug = argv.includes('--debug');
    const json = argv.includes('--json');
    let grant: EnvGrant | undefined;
    try {
      grant = selectGrant(process.env).grant;
    } catch {
      grant = undefined;
    }
    if (error instanceof UsageError) {
      if (json) writeJsonError('ERR_USAGE', undefined, error.message, undefined);
      else process.stderr.write(`cirrus-auth: ${error.message}\n${USAGE}\n`);
      process.exitCode = EXIT.usage;
      return;
    }
    if (error instanceof InputError) {
      if (json) writeJsonError('ERR_INPUT', undefined, error.message, undefined);
      else process.stderr.write(`cirrus-auth: ${error.message}\n`);
      process.exitCode = EXIT.failure;
      return;
    }
    const advice = hint(error, grant);
    if (json) {
      const code = error instanceof AuthError ? error.code : 'ERR_UNKNOWN';
      const reason = error instanceof OAuthError ? error.reason : undefined;
      writeJsonError(code, reason, failureLine(error).replace(/^ERR_[A-Z_]+: /, ''), advice);
      process.exitCode = EXIT.failure;
      return;
    }
    process.stderr.write(`cirrus-auth: ${failureLine(error)}\n`);
    if (advice !== undefined) process.stderr.write(`hint: ${advice}\n`);
    if (debug && error instanceof Error && error.stack) {
      // Only our own messages are safe to print; of any other error, the frames without the message.
      const frames = error.stack.split('\n').filter((line) => /^\s+at /.test(line));
      process.stderr.write(
        error instanceof AuthError ? `${error.stack}\n` : `${[error.name, ...frames].join('\n')}\n`,
      );
    }
    process.exitCode = EXIT.failure;
  },
);
