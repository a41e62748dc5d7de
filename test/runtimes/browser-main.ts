// A page script (bundled by esbuild for the browser): the host puts the config on the page and
// reads the checks back from it.
import { runSmoke, type SmokeConfig } from './smoke.ts';

const page = globalThis as unknown as { SMOKE_CONFIG: SmokeConfig; SMOKE_RESULT?: unknown };
runSmoke(page.SMOKE_CONFIG).then(
  (checks) => {
    page.SMOKE_RESULT = checks;
  },
  (error: unknown) => {
    page.SMOKE_RESULT = [{ name: 'load', ok: false, detail: String(error) }];
  },
);
