// `node --cpu-prof --cpu-prof-dir=DIR bench/profile.ts <fetch|axios|ky> [bare]`: one client under
// load against the server child, for a CPU profile of the adapter; `node bench/profile.ts --top
// FILE.cpuprofile` prints its top self-time frames.
import { readFileSync } from 'node:fs';
import { type ClientName, loopbackPairs } from './clients.ts';
import { startServerProcess } from './cpu.ts';
import { load } from './lib.ts';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

if (process.argv[2] === '--top') {
  const profile = JSON.parse(readFileSync(process.argv[3] as string, 'utf8')) as {
    nodes: ProfileNode[];
    samples: number[];
    timeDeltas: number[];
  };
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    const dt = profile.timeDeltas[i] ?? 0;
    total += dt;
    if (node === undefined) return;
    const { functionName, url, lineNumber } = node.callFrame;
    const where =
      url === ''
        ? ''
        : ` ${url.replace(/^.*node_modules\//, '').replace(/^.*\/work\/main\//, '')}:${lineNumber + 1}`;
    const key = `${functionName || '(anonymous)'}${where}`;
    self.set(key, (self.get(key) ?? 0) + dt);
  });
  const top = [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(process.argv[4] ?? 5));
  for (const [frame, us] of top) console.log(`${((us / total) * 100).toFixed(1)}%  ${frame}`);
} else {
  const client = (process.argv[2] ?? 'fetch') as ClientName;
  const bare = process.argv[3] === 'bare';
  const server = await startServerProcess();
  const [bareSend, adapterSend] = loopbackPairs(server.url)[client];
  const send = bare ? bareSend : adapterSend;
  await load(2_000, 16, send);
  await load(20_000, 16, send);
  await server.stop();
}
