// The browser login example, driven end to end in headless Chromium against the fake org.
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp } from '../../examples/web-server/app.ts';
import { chromiumPath, launchChromium } from '../_chromium.js';
import { useFakeOrg } from '../_org.js';

const executablePath = chromiumPath;
if (executablePath === undefined) {
  console.warn(
    'SKIPPED: no Chromium binary (set CHROMIUM_PATH or apt-get install chromium); .ci/run installs one',
  );
}

describe.skipIf(executablePath === undefined && process.env.CIRRUS_REQUIRE_SERVICES !== '1')(
  'web server login example in headless Chromium',
  () => {
    const fx = useFakeOrg();
    let app: Awaited<ReturnType<typeof startApp>>;
    let browser: Browser;

    beforeAll(async () => {
      app = await startApp({
        clientId: fx.org.clientId,
        clientSecret: fx.org.clientSecret,
        loginUrl: fx.org.loginUrl,
      });
      browser = await launchChromium();
    }, 60_000);
    afterAll(async () => {
      await browser?.close();
      await app?.close();
    });

    it('logs in through the org’s Allow page and shows the user on /me', async () => {
      const page = await browser.newPage();
      await page.goto(`${app.url}/login`);
      expect(new URL(page.url()).origin).toBe(fx.org.loginUrl);
      expect(await page.textContent('h1')).toBe('Allow Access?');
      await Promise.all([page.waitForURL(`${app.url}/me`), page.click('#allow')]);
      expect(await page.textContent('#user')).toBe(fx.org.username);
      expect(fx.org.stats.tokenRequestsByGrant).toEqual({ authorization_code: 1 });
      await page.close();
    });

    it('a forged callback state gets an error page and no session', async () => {
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(`${app.url}/login`); // a pending login for this browser, then a forged return
      const response = await page.goto(`${app.url}/callback?code=stolen-code&state=forged`);
      expect(response?.status()).toBe(400);
      expect(await page.textContent('#message')).toBe('Login failed (ERR_STATE_MISMATCH).');
      const me = await page.goto(`${app.url}/me`);
      expect(me?.status()).toBe(401);
      expect(await page.textContent('#message')).toContain('Not signed in');
      expect(fx.org.stats.tokenRequests).toBe(0);
      await context.close();
    });

    it('a user who presses Deny gets an error page and no session', async () => {
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(`${app.url}/login`);
      await Promise.all([page.waitForURL(/\/callback/), page.click('#deny')]);
      expect(await page.textContent('#message')).toBe('Login failed (ERR_OAUTH).');
      expect((await page.goto(`${app.url}/me`))?.status()).toBe(401);
      await context.close();
    });
  },
);
