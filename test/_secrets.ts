import { type InspectOptions, inspect } from 'node:util';
import { expect } from 'vitest';

/**
 * Every combination of the `util.inspect` options that change what is shown (not just how):
 * hidden and prototype properties, getters of each kind, proxies, custom inspect functions
 * bypassed, colours, default and unlimited depth. `customInspect: false` skips every
 * `[util.inspect.custom]`, so a secret must not sit in any property or reachable getter at all.
 */
export const INSPECT_SWEEP: readonly InspectOptions[] = (() => {
  const sweep: InspectOptions[] = [];
  for (const showHidden of [false, true])
    for (const getters of [false, true, 'get', 'set'] as const)
      for (const customInspect of [true, false])
        for (const showProxy of [false, true])
          for (const colors of [false, true])
            for (const depth of [undefined, Number.POSITIVE_INFINITY])
              sweep.push({
                showHidden,
                getters,
                customInspect,
                showProxy,
                colors,
                ...(depth === undefined ? {} : { depth }),
                maxArrayLength: Number.POSITIVE_INFINITY,
                maxStringLength: Number.POSITIVE_INFINITY,
              });
  return sweep;
})();

/**
 * The part of {@link INSPECT_SWEEP} that decides what text is shown, for properties that check
 * thousands of values: `getters: true` shows every getter `'get'` and `'set'` show (and `false`
 * shows none), and colours only wrap what is shown in escape codes. 16 renderings instead of 128;
 * the whole sweep still runs over every kind of object in inspect-sweep.test.ts.
 */
export const INSPECT_CONTENT_SWEEP: readonly InspectOptions[] = INSPECT_SWEEP.filter(
  (options) => options.getters === true && options.colors === false,
);

/**
 * Asserts that none of `secrets` appears in any way a value could be shown: every
 * {@link INSPECT_SWEEP} rendering (what `console.log`, `console.error` and `%o` print),
 * `JSON.stringify`, and along the `cause` chain each error's message, stack and `String()`.
 */
export function expectNoSecrets(
  value: unknown,
  secrets: readonly string[],
  sweep: readonly InspectOptions[] = INSPECT_SWEEP,
): void {
  for (const secret of secrets) expect(secret.length).toBeGreaterThan(3);
  const views: [string, string][] = sweep.map((options) => [
    label(options),
    inspect(value, options),
  ]);
  views.push(['JSON.stringify', safeJson(value)]);
  let current: unknown = value;
  for (let depth = 0; current instanceof Error && depth < 5; depth++) {
    views.push(
      [`cause ${depth} message`, current.message],
      [`cause ${depth} stack`, current.stack ?? ''],
      [`cause ${depth} String()`, String(current)],
      [`cause ${depth} JSON.stringify`, safeJson(current)],
    );
    current = current.cause;
  }
  for (const secret of secrets) {
    // Name the view that leaked, never print the secret itself into the failure.
    const leaked = views.filter(([, text]) => text.includes(secret)).map(([name]) => name);
    expect(leaked, 'views showing a secret').toEqual([]);
  }
}

/** A short name for one sweep entry, for failure messages: `inspect(showHidden getters=get)`. */
function label(o: InspectOptions): string {
  const on = [
    o.showHidden ? 'showHidden' : '',
    o.getters ? `getters=${String(o.getters)}` : '',
    o.customInspect === false ? 'customInspect=false' : '',
    o.showProxy ? 'showProxy' : '',
    o.colors ? 'colors' : '',
    o.depth === undefined ? '' : `depth=${o.depth}`,
  ];
  return `inspect(${on.filter(Boolean).join(' ')})`;
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
