// Property: under any interleaving of getToken (some aborted), invalidate (of the current or an old
// token), clock jumps, and mints that succeed or fail in any order, the engine runs at most one mint
// at a time, every caller settles, callers only ever get tokens that were minted, every rejection is
// typed (an AuthError, or the caller's own abort reason), and an old token never evicts a newer one.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AuthError, TransportError } from '../../src/index.js';
import { CachingSession } from '../../src/session/caching-session.js';

const RUNS = Number(process.env.FUZZ_RUNS_ENGINE ?? 1_000);
const TTL = 40_000;

type Op =
  | { kind: 'get' }
  | { kind: 'get-aborted'; after: boolean }
  | { kind: 'invalidate-current' }
  | { kind: 'invalidate-old' }
  | { kind: 'jump'; ms: number }
  | { kind: 'fail-next' };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ kind: 'get' as const }) },
  { weight: 1, arbitrary: fc.boolean().map((after) => ({ kind: 'get-aborted' as const, after })) },
  { weight: 2, arbitrary: fc.constant({ kind: 'invalidate-current' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'invalidate-old' as const }) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 0, max: 2 * TTL }).map((ms) => ({ kind: 'jump' as const, ms })),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'fail-next' as const }) },
);

describe('engine interleavings', () => {
  it(`keep the engine's promises (${RUNS} interleavings)`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        fc.array(op, { minLength: 1, maxLength: 25 }),
        async (s, ops) => {
          let now = 0;
          let inFlight = 0;
          let maxInFlight = 0;
          let minted = 0;
          let failNext = false;
          const issued: string[] = [];
          let attempts = 0;
          const mint = async () => {
            attempts++;
            inFlight++;
            maxInFlight = Math.max(maxInFlight, inFlight);
            const fail = failNext;
            failNext = false;
            await s.schedule(Promise.resolve(), 'token endpoint answers');
            inFlight--;
            if (fail) throw new TransportError('down');
            const token = `token-${++minted}`;
            issued.push(token);
            return { accessToken: token };
          };
          const session = new CachingSession(
            { instanceUrl: 'https://acme.my.salesforce.com', mint: mint },
            {
              tokenTtlMs: TTL,
              now: () => now,
              backoff: false,
            },
          );

          const pending: { settled: boolean; promise: Promise<unknown> }[] = [];
          const track = (promise: Promise<unknown>) => {
            const entry = { settled: false, promise };
            promise.then(
              () => {
                entry.settled = true;
              },
              () => {
                entry.settled = true;
              },
            );
            pending.push(entry);
            return promise;
          };
          const got: string[] = [];
          let last: string | undefined;
          for (const o of ops) {
            switch (o.kind) {
              case 'get':
                track(session.getToken()).then(
                  (t) => {
                    got.push(t as string);
                    last = t as string;
                  },
                  () => {},
                );
                break;
              case 'get-aborted': {
                const controller = new AbortController();
                if (!o.after) controller.abort(new Error('gave up'));
                else
                  void s
                    .schedule(Promise.resolve(), 'caller aborts')
                    .then(() => controller.abort(new Error('gave up')));
                track(session.getToken({ signal: controller.signal })).catch(() => {});
                break;
              }
              case 'invalidate-current':
                if (last !== undefined) track(session.invalidate(last));
                break;
              case 'invalidate-old':
                track(session.invalidate('token-0'));
                break;
              case 'jump':
                now += o.ms;
                break;
              case 'fail-next':
                failNext = true;
                break;
            }
            // Let the scheduler interleave some of what is already waiting.
            if (s.count() > 0 && minted % 2 === 0) await s.waitOne();
          }
          // Settle everything, including mints that start only once earlier work has settled.
          const drain = async () => {
            for (let i = 0; i < 200; i++) {
              await Promise.resolve();
              if (s.count() > 0) await s.waitAll();
            }
          };
          await drain();

          expect(maxInFlight).toBeLessThanOrEqual(1);
          expect(pending.every((p) => p.settled)).toBe(true);
          for (const token of got) expect(issued).toContain(token);
          for (const p of pending) {
            await p.promise.catch((error: unknown) => {
              // Rejections are the mint's AuthError or a caller's own abort reason: nothing untyped.
              expect(error instanceof AuthError || (error as Error).message === 'gave up').toBe(
                true,
              );
            });
          }

          expect(minted).toBe(issued.length);

          // An invalidation of a token that is not the cached one never evicts it: a read just
          // before it and a read just after it, in the same turn, get the same token.
          const attemptsBefore = attempts;
          const before = session.getToken().catch(() => 'failed');
          const after = Promise.all([
            session.invalidate('token-0'),
            session.getToken().catch(() => 'failed'),
          ]);
          await drain();
          expect((await after)[1]).toBe(await before);
          // The model: the cache holds the last token minted, and a read that needed no mint gets it.
          if (attempts === attemptsBefore && issued.length > 0)
            expect(await before).toBe(issued.at(-1));
        },
      ),
      { numRuns: RUNS },
    );
  }, 60_000);
});
