/**
 * `cirrus-auth/testing`: a fake Salesforce org on loopback for your own tests, and an echo server
 * to stand in for any other origin.
 * @packageDocumentation
 */

export type { FakeStreaming, FakeStreamingStats } from './cometd-server.js';
export { type EchoRecord, type EchoServer, startEchoServer } from './echo-server.js';
export {
  type ApiRejection,
  type ApiRequestRecord,
  type EchoedRequest,
  type FakeOrg,
  type FakeOrgOptions,
  type FakeOrgStats,
  type FakeTenant,
  type FakeTenantOptions,
  startFakeOrg,
  type TokenFault,
} from './fake-org.js';
export {
  type FakePubSub,
  type FakePubSubStats,
  PUBSUB_AUTH_ERROR,
} from './pubsub-server.js';
