import { execFileSync } from 'node:child_process';
import type { Connection as NodeConnection } from '@jsforce/jsforce-node';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { jsforceConnection } from '../../src/adapters/jsforce.js';
import { useFakeOrg } from '../_org.js';

// jsforceConnection with @jsforce/jsforce-node (what @salesforce/core uses) is typed as that
// package's Connection; with neither jsforce package installed it says what to pass.
const fx = useFakeOrg();

describe('jsforceConnection and the jsforce packages', () => {
  it("with @jsforce/jsforce-node's Connection: a connection of that type, and it works", async () => {
    const { Connection } = await import('@jsforce/jsforce-node');
    const conn = await jsforceConnection(fx.session(), { Connection });
    expectTypeOf(conn).toEqualTypeOf<NodeConnection>();
    expect(conn).toBeInstanceOf(Connection);
    const limits = (await conn.request('/services/data/v62.0/limits')) as Record<string, unknown>;
    expect(limits).toHaveProperty('DailyApiRequests');
  });

  it('with neither package installed and no Connection: a ConfigError that says to pass one', () => {
    // A child whose module resolution cannot find jsforce nor @jsforce/jsforce-node.
    const hooks = `data:text/javascript,${encodeURIComponent(`
      export async function resolve(specifier, context, next) {
        if (specifier === 'jsforce' || specifier === '@jsforce/jsforce-node') {
          throw Object.assign(new Error('not found'), { code: 'ERR_MODULE_NOT_FOUND' });
        }
        return next(specifier, context);
      }`)}`;
    const script = `
      import { register } from 'node:module';
      register(${JSON.stringify(hooks)});
      const { jsforceConnection } = await import('cirrus-auth/jsforce');
      const { StaticTokenAuth } = await import('cirrus-auth');
      const session = new StaticTokenAuth({ accessToken: 'x', instanceUrl: 'https://acme.my.salesforce.com' });
      try { await jsforceConnection(session); console.log('no error'); }
      catch (e) { console.log(e.name, e.code, e.option, /Connection class/.test(e.message)); }`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
    });
    expect(out.trim()).toBe('ConfigError ERR_CONFIG Connection true');
  });
});
