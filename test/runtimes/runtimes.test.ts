// The smoke suite (smoke.ts) on every runtime the README's table names: Node (in this process),
// Bun and Deno (run on the sources as they are), workerd (a Worker bundled by esbuild, 2024
// compatibility date, no nodejs_compat) and headless Chromium (a page bundled for the browser).
// The fake org and a control server run here; each runtime reaches both over loopback.
// Bun, Deno and workerd come from the npm registry: .ci/run installs them into
// ~/.cache/cirrus-runtimes (CIRRUS_RUNTIMES_DIR); a missing one skips with a message, or fails
// under CIRRUS_REQUIRE_SERVICES=1.
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeOrg, startFakeOrg } from '../../src/testing/index.js';
import { chromiumPath, launchChromium } from '../_chromium.js';
import { freePort, until } from '../_wait.js';
import { runSmoke, type SmokeCheck, type SmokeConfig } from './smoke.ts';

const run = promisify(execFile);
const here = import.meta.dirname;
const required = process.env.CIRRUS_REQUIRE_SERVICES === '1';
const runtimes =
  process.env.CIRRUS_RUNTIMES_DIR ?? join(homedir(), '.cache/cirrus-runtimes/node_modules');
const found = (...paths: (string | undefined)[]) =>
  paths.find((path): path is string => path !== undefined && existsSync(path));
const arm = process.arch === 'arm64';
const binaries = {
  bun: found(
    process.env.CIRRUS_BUN,
    join(runtimes, 'bun/bin/bun.exe'),
    join(runtimes, `@oven/bun-linux-${arm ? 'aarch64' : 'x64'}/bin/bun`),
  ),
  deno: found(
    process.env.CIRRUS_DENO,
    join(runtimes, `@deno/linux-${arm ? 'arm64' : 'x64'}-glibc/deno`),
  ),
  workerd: found(
    process.env.CIRRUS_WORKERD,
    join(runtimes, `@cloudflare/workerd-linux-${arm ? 'arm64' : '64'}/bin/workerd`),
  ),
  chromium: chromiumPath,
};
for (const [name, path] of Object.entries(binaries)) {
  if (path === undefined)
    console.warn(
      `SKIPPED: no ${name} binary for the runtime smoke suite (.ci/run installs it: npm install --prefix ~/.cache/cirrus-runtimes bun deno workerd; apt-get install chromium)`,
    );
}
const runs = (name: keyof typeof binaries) => binaries[name] !== undefined || required;
/** The binary's path; with CIRRUS_REQUIRE_SERVICES=1 a missing one fails its test, saying so. */
const binary = (name: keyof typeof binaries): string => {
  const path = binaries[name];
  if (path === undefined)
    throw new Error(
      `no ${name} binary under ${runtimes} (CIRRUS_RUNTIMES_DIR) and CIRRUS_REQUIRE_SERVICES=1 requires it`,
    );
  return path;
};

let org: FakeOrg;
let control: Server;
let config: SmokeConfig;
let dir: string;
let page = '';
let bundle = '';
let seenAuthorization = 0;

beforeAll(async () => {
  // The control server is the page's own origin, and "another origin" for the bearer check.
  control = createServer((req, res) => {
    res.setHeader('access-control-allow-origin', '*');
    res.setHeader('access-control-allow-headers', 'authorization, x-probe, content-type');
    if (req.method === 'OPTIONS') return void res.writeHead(204).end();
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const send = (body: unknown) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (path === '/stats') return send(org.stats);
    if (path === '/revoke') {
      org.revokeAllTokens();
      return send({});
    }
    if (path === '/refresh-token') return void res.writeHead(200).end(org.issueRefreshToken());
    if (path === '/seen') {
      if (req.headers['x-probe'] !== undefined && req.headers.authorization !== undefined)
        seenAuthorization++;
      return send({ authorization: seenAuthorization });
    }
    if (path === '/') return void res.writeHead(200, { 'content-type': 'text/html' }).end(page);
    if (path === '/smoke.js')
      return void res.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle);
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => control.listen(0, '127.0.0.1', resolve));
  const controlUrl = `http://127.0.0.1:${(control.address() as AddressInfo).port}`;
  org = await startFakeOrg({ corsOrigins: [controlUrl] });
  config = {
    loginUrl: org.loginUrl,
    instanceUrl: org.instanceUrl,
    clientId: org.clientId,
    clientSecret: org.clientSecret,
    username: org.username,
    privateKey: org.jwtPrivateKey as string,
    control: controlUrl,
  };
  dir = await mkdtemp(join(tmpdir(), 'cirrus-runtimes-'));
}, 30_000);

afterAll(async () => {
  await org?.close();
  await new Promise((resolve) => control?.close(resolve));
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Bundles `entry` the way a browser or Worker project would: no Node built-ins, no shims. */
async function bundled(entry: string): Promise<string> {
  const result = await build({
    entryPoints: [join(here, entry)],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    write: false,
    logLevel: 'silent',
  });
  return (result.outputFiles[0] as { text: string }).text;
}

function expectAllPass(checks: SmokeCheck[]): void {
  expect(checks.map((c) => c.name)).toHaveLength(6);
  expect(checks.filter((c) => !c.ok)).toEqual([]);
}

describe('what a browser or Worker bundle needs', () => {
  it('the root entry, cirrus-auth/fetch and cirrus-auth/ky bundle for the browser with no node: import and no shim', async () => {
    const dist = join(here, '../../dist');
    const result = await build({
      stdin: {
        contents: ['index.js', 'adapters/fetch.js', 'adapters/ky.js']
          .map((entry) => `export * from ${JSON.stringify(join(dist, entry))};`)
          .join('\n'),
        resolveDir: here,
      },
      bundle: true,
      format: 'esm',
      platform: 'browser',
      write: false,
      metafile: true,
      logLevel: 'silent',
    });
    const imports = Object.values(result.metafile.inputs).flatMap((input) => input.imports);
    expect(imports.filter((i) => i.path.startsWith('node:'))).toEqual([]);
    expect((result.outputFiles[0] as { text: string }).text).not.toMatch(
      /\b(?:from|import\(|require\()\s*["']node:/,
    );
  });
});

describe('runtime smoke suite', () => {
  it('passes on Node (this process), the baseline the other runtimes are held to', async () => {
    expectAllPass(await runSmoke(config));
  });

  it('fails a check when the org misbehaves (the suite can fail)', async () => {
    org.rejectApiTokens('invalid-session');
    try {
      const checks = await runSmoke(config);
      expect(checks.filter((c) => !c.ok).length).toBeGreaterThanOrEqual(4);
    } finally {
      org.rejectApiTokens(undefined);
    }
  });

  it.runIf(runs('bun'))(
    'passes on Bun',
    async () => {
      const { stdout } = await run(
        binary('bun'),
        ['run', join(here, 'cli-main.ts'), JSON.stringify(config)],
        {
          timeout: 30_000,
        },
      );
      expectAllPass(JSON.parse(stdout));
    },
    40_000,
  );

  it.runIf(runs('deno'))(
    'passes on Deno',
    async () => {
      const { stdout } = await run(
        binary('deno'),
        [
          'run',
          '--allow-net=127.0.0.1',
          '--allow-read',
          '--allow-env',
          join(here, 'cli-main.ts'),
          JSON.stringify(config),
        ],
        { timeout: 30_000, env: { ...process.env, DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' } },
      );
      expectAllPass(JSON.parse(stdout));
    },
    40_000,
  );

  it.runIf(runs('workerd'))(
    'passes on workerd (a Worker, 2024 compatibility date, no nodejs_compat)',
    async () => {
      await writeFile(join(dir, 'worker.js'), await bundled('worker-main.ts'));
      const port = await freePort();
      await writeFile(
        join(dir, 'config.capnp'),
        `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .worker),
    (name = "loopback", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [(name = "http", address = "127.0.0.1:${port}", http = (), service = "main")],
);
const worker :Workerd.Worker = (
  modules = [(name = "worker", esModule = embed "worker.js")],
  compatibilityDate = "2024-09-23",
  globalOutbound = "loopback",
);
`,
      );
      const child = spawn(binary('workerd'), ['serve', join(dir, 'config.capnp')], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (chunk) => {
        stderr += chunk;
      });
      try {
        let response: Response | undefined;
        await until(async () => {
          response = await fetch(`http://127.0.0.1:${port}/`, {
            method: 'POST',
            body: JSON.stringify(config),
          }).catch(() => undefined);
          return response !== undefined || child.exitCode !== null;
        }, 20_000);
        expect(response, `workerd did not answer: ${stderr.slice(-800)}`).toBeDefined();
        const text = await (response as Response).text();
        expect((response as Response).status, text.slice(0, 800)).toBe(200);
        expectAllPass(JSON.parse(text));
      } finally {
        child.kill();
      }
    },
    40_000,
  );

  it.runIf(runs('chromium'))(
    'passes in headless Chromium (a page bundled for the browser)',
    async () => {
      bundle = await bundled('browser-main.ts');
      page = `<!doctype html><script>window.SMOKE_CONFIG = ${JSON.stringify(config)};</script><script type="module" src="/smoke.js"></script>`;
      const browser = await launchChromium();
      try {
        const tab = await browser.newPage();
        const errors: string[] = [];
        tab.on('pageerror', (error) => errors.push(String(error)));
        await tab.goto(config.control);
        await tab.waitForFunction(
          () => (globalThis as { SMOKE_RESULT?: unknown }).SMOKE_RESULT !== undefined,
          undefined,
          {
            timeout: 30_000,
          },
        );
        const checks = await tab.evaluate(
          () => (globalThis as unknown as { SMOKE_RESULT: SmokeCheck[] }).SMOKE_RESULT,
        );
        expect(errors).toEqual([]);
        expectAllPass(checks);
      } finally {
        await browser.close();
      }
    },
    60_000,
  );
});
