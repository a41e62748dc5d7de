// A small web app that logs users in with Salesforce (web server flow + PKCE) and calls the API
// as them. Run: SF_CLIENT_ID=… SF_CLIENT_SECRET=… SF_LOGIN_URL=https://login.salesforce.com \
//   node examples/web-server/app.ts   (register http://127.0.0.1:3000/callback on the connected app)
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type AuthSession, type PendingLogin, WebServerFlow } from 'cirrus-auth';
import { authFetch } from 'cirrus-auth/fetch';

interface Visitor {
  pending?: PendingLogin; // between /login and /callback: server-side only, never in the browser
  session?: AuthSession; // after a successful login
}

export async function startApp(config: {
  clientId: string;
  clientSecret?: string | undefined;
  loginUrl: string;
  port?: number;
}) {
  const visitors = new Map<string, Visitor>(); // keyed by an opaque cookie; use your session store
  const server = createServer((req, res) =>
    route(req, res).catch(() => page(res, 500, 'Something went wrong.')),
  );
  await new Promise<void>((resolve) => server.listen(config.port ?? 0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const flow = new WebServerFlow({ ...config, redirectUri: `${origin}/callback` });

  async function route(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', origin);
    const sid = /(?:^|; )sid=([\w-]+)/.exec(req.headers.cookie ?? '')?.[1];
    const visitor = sid === undefined ? undefined : visitors.get(sid);
    if (url.pathname === '/login') {
      const { url: authorizeUrl, pending } = flow.start();
      const id = randomBytes(24).toString('base64url');
      visitors.set(id, { pending });
      res.writeHead(302, {
        location: authorizeUrl,
        'set-cookie': `sid=${id}; HttpOnly; SameSite=Lax; Path=/`,
      });
      return void res.end();
    }
    if (url.pathname === '/callback') {
      if (visitor?.pending === undefined) return page(res, 400, 'No login in progress.');
      const { pending } = visitor;
      delete visitor.pending; // one use only
      try {
        visitor.session = await flow.complete(pending, url.searchParams);
      } catch (error) {
        return page(res, 400, `Login failed (${(error as { code?: string }).code ?? 'error'}).`);
      }
      res.writeHead(302, { location: '/me' });
      return void res.end();
    }
    if (url.pathname === '/me') {
      if (visitor?.session === undefined)
        return page(res, 401, 'Not signed in. <a href="/login">Log in</a>');
      const me = (await (
        await authFetch(visitor.session)('/services/oauth2/userinfo')
      ).json()) as Record<string, string>;
      return page(
        res,
        200,
        `Signed in as <span id="user">${escapeHtml(me.preferred_username ?? '?')}</span>.`,
      );
    }
    return page(res, 404, 'Not found. Try <a href="/login">/login</a>.');
  }

  return {
    url: origin,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function page(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><title>cirrus-auth demo</title><p id="message">${html}</p>`);
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

if (import.meta.main) {
  const app = await startApp({
    clientId: process.env.SF_CLIENT_ID ?? '',
    clientSecret: process.env.SF_CLIENT_SECRET, // omit for a public app
    loginUrl: process.env.SF_LOGIN_URL ?? 'https://login.salesforce.com',
    port: Number(process.env.PORT ?? 3000),
  });
  console.log(`open ${app.url}/login`);
}
