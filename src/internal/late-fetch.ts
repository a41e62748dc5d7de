/**
 * The global `fetch` as it is when called, not when a session was built (a fetch installed later,
 * or a test double, is used). One function for every session: a pool holds thousands.
 */
export const lateGlobalFetch: typeof fetch = (input, init) => globalThis.fetch(input, init);
