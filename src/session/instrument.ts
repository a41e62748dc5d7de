import { AuthError } from '../errors.js';
import { type Logger, publish } from './diagnostics.js';
import type { MintContext, MintedToken, MintFn } from './token-source.js';

/**
 * A mint function that reports each token request: `cirrus-auth:mint:start` and `:mint:end` on
 * `node:diagnostics_channel`, a debug line on success and a warn line on failure. It wraps the
 * grant's own mint, innermost, so the events mark real token requests, whoever asked for them
 * (this session, or this session's part in a fleet).
 */
export function instrumented(
  mint: MintFn,
  session: string,
  instanceUrl: string,
  logger: Logger | undefined,
): MintFn {
  return async function mintReported(context: MintContext): Promise<MintedToken> {
    const { reason } = context;
    publish('mintStart', () => ({ session, instanceUrl, reason }));
    const started = performance.now();
    try {
      const minted = await mint(context);
      const durationMs = performance.now() - started;
      publish('mintEnd', () => ({
        session,
        instanceUrl,
        reason,
        durationMs,
        outcome: 'ok',
        transient: false,
      }));
      logger?.debug?.({ session, instanceUrl, reason, durationMs }, 'cirrus-auth: token minted');
      return minted;
    } catch (error) {
      const durationMs = performance.now() - started;
      const code = errorCode(error);
      const transient = error instanceof AuthError && error.transient;
      publish('mintEnd', () => ({
        session,
        instanceUrl,
        reason,
        durationMs,
        outcome: code,
        transient,
      }));
      logger?.warn?.(
        { session, instanceUrl, reason, code, transient },
        'cirrus-auth: token request failed',
      );
      throw error;
    }
  };
}

/** An error's stable `code`, or `ERR_UNKNOWN` for one that is not cirrus-auth's. */
export function errorCode(error: unknown): string {
  return error instanceof AuthError ? error.code : 'ERR_UNKNOWN';
}
