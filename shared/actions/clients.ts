/**
 * The cloud clients actions use, created lazily by the wiring (shared/adapters/wiring/*) and injected,
 * so tests intercept them (aws-sdk-client-mock, Azurite, HTTP doubles). OWNER: remediation work —
 * add a factory here when an action needs a new client.
 */
export interface CloudClients {
  // Filled in by the remediation work: s3(region), iam(), ec2(region), azureStorage(sub), azureNetwork(sub),
  // azureBlob(account), gcsStorage(), gcpFirewalls() …
}
