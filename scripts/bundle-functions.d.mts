/** Types for scripts/bundle-functions.mjs (plain JS so the build runs without a TypeScript step). */
export interface FunctionEntry {
  cloud: 'aws' | 'azure' | 'gcp';
  name: string;
  entry: string;
}
export type Permissions = Record<'aws' | 'azure' | 'gcp', string[]> & {
  /** The read-only `verifyPermissions` the actions declare, per provider. */
  verify: Record<'aws' | 'azure' | 'gcp', string[]>;
};
export interface Statement {
  Sid: string;
  Effect: 'Allow';
  Action: string[];
  Resource: unknown;
}
export function functionEntries(root: string): FunctionEntry[];
export function bundlePath(root: string, fn: FunctionEntry): string;
export function zipPath(root: string, fn: FunctionEntry): string;
export function bundledConfig(root: string, configDir: string, opts?: { optional?: boolean }): Promise<unknown>;
export function writeZip(target: string, files: Array<{ name: string; data: Buffer | string }>): void;
export function readZip(file: string): Map<string, Buffer>;
export function awsActionStatements(actions: string[], prefix?: string): Statement[];
/** IAM role writes denied on closeloop's own roles to the roles holding the actions' permissions. */
export const OWN_ROLE_WRITES: string[];
export function registryPermissions(root: string): Promise<Permissions | undefined>;
export function permissionFiles(perms: Permissions): Record<string, unknown>;
export function writePermissionFiles(opts: { root: string }): Promise<string[]>;
export function bundleFunctions(opts?: {
  root: string;
  configDir?: string;
  only?: string[];
}): Promise<Array<{ function: string; bundle: string; zip: string; bytes: number; totalBytes: number }>>;
export function bundleStats(opts?: { root: string; runs?: number; rebuild?: boolean }): Promise<
  Array<{
    function: string;
    bytes: number;
    totalBytes?: number;
    /** The bundle's import in a fresh process (median ms); null when it cannot load. */
    loadMs: number | null;
    /** The whole fresh process (median ms, node's start-up included). */
    processMs?: number;
    error?: string;
  }>
>;
/** Median wall time of a fresh `node -e ''` (the floor under every loadMs). */
export function nodeStartMs(runs?: number): number;
export const zodEnglishOnly: unknown;
export const zodNamespaceInDependencies: unknown;
export const otherCloudsStubbed: unknown;
/** Per cloud, the packages its bundles resolve to a throwing stub (other clouds' action SDKs). */
export const STUBBED_PACKAGES: Record<'aws' | 'azure' | 'gcp', RegExp>;
export function otherCloudsStubbedFor(cloud: 'aws' | 'azure' | 'gcp'): unknown;
/** Bytes per package in a function's last build (all chunks, and at cold start), largest cold first. */
export function bundleComposition(
  root: string,
  fn: FunctionEntry,
): Array<{ package: string; bytes: number; coldBytes: number }>;
/** Wall ms of one fresh `node` importing the bundle; throws with the error lines when it cannot load. */
export function loadOnce(file: string): number;
/** One cold load in a fresh `node`: the import timed inside it, and the whole process. */
export function loadTimes(file: string): { importMs: number; processMs: number };
/** Wall ms of one fresh `node` importing every lazily loaded chunk of the function's bundle; throws when one cannot load. */
export function loadChunks(root: string, fn: FunctionEntry): number;
export const lambdaCredentialsOnly: unknown;
/** Bytes a cold start reads: the entry file and the chunks it imports statically, transitively. */
export function coldBytes(entryFile: string): number;
