// Bun and Deno run this file as it is: the config comes as the first argument, the checks go to
// stdout as one JSON line.
import { runSmoke, type SmokeConfig } from './smoke.ts';

const args: string[] =
  (globalThis as { Deno?: { args: string[] } }).Deno?.args ??
  (globalThis as unknown as { process: { argv: string[] } }).process.argv.slice(2);
console.log(JSON.stringify(await runSmoke(JSON.parse(args[0] as string) as SmokeConfig)));
