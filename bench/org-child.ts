// A fake org with many tenants in its own process, for the SessionPool memory figure: the heap
// the bench measures is then the pool's alone. Prints the org and its tenants as one JSON line on
// stdout; exits when stdin closes.
import { startFakeOrg } from 'cirrus-auth/testing';

const tenants = Number(process.argv[2] ?? '100');
const org = await startFakeOrg({
  apiLogLimit: 0,
  // The figures count the logins each contender makes (a naive client's run into the thousands);
  // Salesforce would refuse them past about 3,600 an hour, which tests meet, not the bench.
  loginRate: { logins: Number.MAX_SAFE_INTEGER },
});
const list = [];
for (let i = 0; i < tenants; i++) {
  const t = await org.addTenant();
  list.push({ clientId: t.clientId, clientSecret: t.clientSecret, instanceUrl: t.instanceUrl });
}
process.stdout.write(`${JSON.stringify({ loginUrl: org.loginUrl, tenants: list })}\n`);
process.stdin.resume();
process.stdin.on('end', () => {
  void org.close().then(() => process.exit(0));
});
