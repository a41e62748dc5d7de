// A refresh-token session that survives Refresh Token Rotation: persist every new refresh token.
// Run: SF_CLIENT_ID=… SF_CLIENT_SECRET=… SF_REFRESH_TOKEN=… SF_INSTANCE_URL=https://acme.my.salesforce.com node examples/refresh-token.ts
import { readFileSync, writeFileSync } from 'node:fs';
import { RefreshTokenAuth } from 'cirrus-auth';

// Your secret store; a file keeps the example short (never commit it).
const store = process.env.REFRESH_TOKEN_FILE ?? '.refresh-token';
const saved = (() => {
  try {
    return readFileSync(store, 'utf8');
  } catch {
    return process.env.SF_REFRESH_TOKEN ?? '';
  }
})();

const session = new RefreshTokenAuth({
  clientId: process.env.SF_CLIENT_ID ?? '',
  clientSecret: process.env.SF_CLIENT_SECRET, // omit for a public app
  refreshToken: saved,
  loginUrl: process.env.SF_LOGIN_URL ?? 'https://login.salesforce.com',
  instanceUrl: process.env.SF_INSTANCE_URL ?? '',
  // Awaited before the new access token is used: once this returns, the new token is safe.
  onRefreshTokenRotated: (token) => writeFileSync(store, token, { mode: 0o600 }),
});

const first = await session.getToken();
await session.invalidate(first); // as if the org had answered 401: the next call refreshes again
await session.getToken();
console.log(`refresh-token example: 2 refreshes, the rotated token is saved to ${store}`);
