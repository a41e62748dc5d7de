import { fetch as undiciFetch } from 'undici';
import { describe, expect, it } from 'vitest';
import { authFetch } from '../../src/adapters/fetch.js';
import { useFakeOrg } from '../_org.js';

// `authFetch`'s `fetch` option takes the undici package's own fetch as it is (its Request and
// Response types are not the DOM's: no cast), and the adapter works through it.
const fx = useFakeOrg();

describe('authFetch over undici.fetch', () => {
  it('attaches the token, and a revocation costs exactly one re-mint and one retry', async () => {
    const session = fx.session();
    const api = authFetch(session, { fetch: undiciFetch });
    const first = await api('/services/data/v62.0/limits');
    expect(first.status).toBe(200);
    await first.arrayBuffer();
    fx.org.revokeAllTokens();
    fx.org.resetStats();
    const second = await api('/services/data/v62.0/limits');
    expect(second.status).toBe(200);
    expect(await second.json()).toHaveProperty('DailyApiRequests');
    expect(fx.org.stats.tokenRequests).toBe(1);
    expect(fx.org.stats.apiRequests).toBe(2);
    const other = await api(`${fx.other.url}/x`);
    await other.arrayBuffer();
    expect(fx.other.requests.at(-1)?.headers.authorization).toBeUndefined();
  });
});
