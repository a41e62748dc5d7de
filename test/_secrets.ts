import { inspect } from 'node:util';
import { expect } from 'vitest';

/**
 * Asserts that none of `secrets` appears in any way a value could be shown: its message and
 * stack, `util.inspect` (deep, with hidden fields) and `JSON.stringify`, following `cause` chains.
 */
export function expectNoSecrets(value: unknown, secrets: readonly string[]): void {
  const views: string[] = [inspect(value, { depth: 10, showHidden: true }), safeJson(value)];
  let current: unknown = value;
  for (let depth = 0; current instanceof Error && depth < 5; depth++) {
    views.push(current.message, current.stack ?? '', String(current));
    current = current.cause;
  }
  for (const secret of secrets) {
    expect(secret.length).toBeGreaterThan(3);
    for (const view of views) expect(view).not.toContain(secret);
  }
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? '';
  } catch {
    return '';
  }
}

/** Runs `fn` and returns what it threw, failing the test if it did not throw. */
export async function caught(fn: () => unknown): Promise<unknown> {
  try {
    await fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}
