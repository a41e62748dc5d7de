/**
 * A stand-in for an error raised below cirrus-auth (the HTTP client, its parser, a socket) that
 * keeps what a program branches on and a person diagnoses with, the class name and the `code`, all
 * along its `cause` chain, and none of its text: undici's `HTTPParserError` keeps the bytes it
 * choked on (`data`, and in its message for some errors), and a server or proxy that echoes the
 * request puts the client secret or the assertion into those bytes. The stand-in's stack has no
 * frames: they would be ours, and the original's first line is its message.
 */
export function scrubbedCause(error: unknown, depth = 0): Error | undefined {
  if (typeof error !== 'object' || error === null || depth >= MAX_CAUSE_DEPTH) return undefined;
  let name = 'Error';
  let code: string | undefined;
  let inner: Error | undefined;
  try {
    name = nameOf(error);
    const raw = (error as { code?: unknown }).code;
    if (typeof raw === 'string' && /^[A-Z][A-Z0-9_]{0,63}$/.test(raw)) code = raw;
    inner = scrubbedCause((error as { cause?: unknown }).cause, depth + 1);
  } catch {
    // A getter that throws (a custom fetch's odd rejection): what was read so far is kept.
  }
  const stand = new Error(
    code ?? 'details withheld',
    inner === undefined ? undefined : { cause: inner },
  );
  stand.name = name;
  stand.stack = `${name}: ${stand.message}`;
  if (code !== undefined) Object.assign(stand, { code });
  return stand;
}

/** How many causes deep a chain is kept; undici's is two (`TypeError`, then the socket's). */
const MAX_CAUSE_DEPTH = 4;

/** The error's `name` when it is an identifier (`HTTPParserError`, `AbortError`), else its class's. */
function nameOf(error: object): string {
  const identifier = /^[A-Za-z_$][\w$]{0,63}$/;
  const { name } = error as { name?: unknown };
  if (typeof name === 'string' && identifier.test(name)) return name;
  const className = (error as { constructor?: { name?: unknown } }).constructor?.name;
  return typeof className === 'string' && identifier.test(className) ? className : 'Error';
}
