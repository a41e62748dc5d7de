// A plain keep-alive loopback server in its own process, for bench/cpu.ts: the client's CPU time
// is then the client's alone. Prints its URL on stdout, exits when stdin closes.
import { startPlainServer } from './lib.ts';

const server = await startPlainServer();
process.stdout.write(`${server.url}\n`);
process.stdin.resume();
process.stdin.on('end', () => {
  void server.close().then(() => process.exit(0));
});
