import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

// What `npm publish` would ship (the global setup has built dist/): a license, declarations with
// maps that resolve to the shipped sources, the Pub/Sub proto, and nothing from test/ or bench/.
describe('the packed tarball', () => {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const [pack] = JSON.parse(
    execFileSync(npm, ['pack', '--dry-run', '--json', '--ignore-scripts'], { encoding: 'utf8' }),
  ) as [{ files: { path: string }[] }];
  const files = new Set(pack.files.map((f) => f.path));

  it('holds LICENSE, the proto, the declarations, their maps and the sources they point at', () => {
    for (const path of [
      'LICENSE',
      'README.md',
      'package.json',
      'proto/pubsub_api.proto',
      'dist/index.js',
      'dist/index.d.ts',
      'dist/index.d.ts.map',
      'dist/adapters/grpc.d.ts.map',
      'src/index.ts',
    ]) {
      expect(files, path).toContain(path);
    }
    const map = JSON.parse(readFileSync('dist/index.d.ts.map', 'utf8')) as { sources: string[] };
    expect(map.sources).toEqual(['../src/index.ts']);
    expect([...files].filter((f) => /^(test|bench|examples|\.ci)\//.test(f))).toEqual([]);
  });

  it('CommonJS require() loads the root and the subpaths (require(esm), Node 22.12+)', () => {
    const script = `
      const root = require('cirrus-auth');
      const { authFetch } = require('cirrus-auth/fetch');
      const { PostgresTokenStore } = require('cirrus-auth/postgres');
      const { streamingClient } = require('cirrus-auth/streaming');
      const { authInterceptor } = require('cirrus-auth/undici');
      process.stdout.write([typeof root.SessionPool, typeof authFetch, typeof PostgresTokenStore, typeof streamingClient, typeof authInterceptor].join(','));`;
    const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    expect(out).toBe('function,function,function,function,function');
  });
});
