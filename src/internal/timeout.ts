import { unrefTimer } from './runtime.js';
/** What {@link within} answers: the work's value, or that it took too long. */
export type Within<T> = { done: true; value: T } | { done: false };

/**
 * Runs user-supplied `work` (a callback the engine awaits while it holds the mint lock), giving up
 * waiting after `ms`: a hung callback must not hang every caller. A rejection passes through; a
 * late outcome after the time limit is ignored (and never unhandled).
 */
export async function within<T>(work: () => T | Promise<T>, ms: number): Promise<Within<T>> {
  const running = Promise.resolve().then(work);
  running.catch(() => {});
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<Within<T>>((resolve) => {
    timer = setTimeout(() => resolve({ done: false }), ms);
    unrefTimer(timer);
  });
  try {
    return await Promise.race([running.then((value) => ({ done: true as const, value })), late]);
  } finally {
    clearTimeout(timer);
  }
}
