import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ClientCredentialsAuth, TransportError } from '../src/index.js';
import { caught, expectNoSecrets } from './_secrets.js';

// A network failure names the host it could not reach and the client's cause code, so an
// operator reads "ECONNREFUSED at acme.my.salesforce.com" without --debug; never a secret.
const SECRET = 'Tr4nsp0rtSecretValue';
const sessionAt = (loginUrl: string, extra: Record<string, unknown> = {}) =>
  new ClientCredentialsAuth({
    clientId: 'id',
    clientSecret: SECRET,
    loginUrl,
    instanceUrl: loginUrl,
    backoff: false,
    ...extra,
  });

describe('TransportError', () => {
  it('a refused connection: the host and ECONNREFUSED, in the message and as fields', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    const error = await caught(() => sessionAt(`http://127.0.0.1:${port}`).getToken());
    expect(error).toBeInstanceOf(TransportError);
    expect(error).toMatchObject({
      host: `127.0.0.1:${port}`,
      causeCode: 'ECONNREFUSED',
      transient: true,
    });
    expect((error as Error).message).toBe(`Token request failed: 127.0.0.1:${port} (ECONNREFUSED)`);
    expectNoSecrets(error, [SECRET]);
  });

  it('a stall past timeoutMs: the host and ETIMEDOUT', async () => {
    const server = createServer(() => {}); // accepts, never answers
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const error = await caught(() =>
        sessionAt(`http://127.0.0.1:${port}`, { timeoutMs: 100 }).getToken(),
      );
      expect(error).toMatchObject({ host: `127.0.0.1:${port}`, causeCode: 'ETIMEDOUT' });
      expect((error as Error).message).toBe(
        `Token request to 127.0.0.1:${port} timed out after 100 ms (ETIMEDOUT)`,
      );
    } finally {
      server.close();
    }
  });

  it('a custom fetch whose error code echoes a secret: the code is kept out', async () => {
    const fetch = (async () => {
      throw Object.assign(new Error('boom'), { code: SECRET.toUpperCase() });
    }) as typeof globalThis.fetch;
    const error = await caught(() =>
      sessionAt('https://acme.my.salesforce.com', { fetch }).getToken(),
    );
    expect(error).toMatchObject({ host: 'acme.my.salesforce.com', causeCode: undefined });
    expect((error as Error).message).toBe('Token request failed: acme.my.salesforce.com');
    expectNoSecrets(error, [SECRET, SECRET.toUpperCase()]);
  });
});
