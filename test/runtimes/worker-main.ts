// A Cloudflare Worker (bundled by esbuild, run by workerd): POST the config, get the checks.
import { runSmoke, type SmokeConfig } from './smoke.ts';

export default {
  async fetch(request: Request): Promise<Response> {
    const checks = await runSmoke((await request.json()) as SmokeConfig);
    return new Response(JSON.stringify(checks), {
      headers: { 'content-type': 'application/json' },
    });
  },
};
