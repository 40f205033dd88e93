#!/usr/bin/env node
// Bundles every deployed function with esbuild into its own small artifact and zips it:
//   functions/aws/<name>.ts   → dist/functions/aws/<name>.zip   (<name>.mjs + config.json, package.artifact in serverless.yml)
//   functions/azure/<name>.ts → dist/functions/azure/<name>.zip (<name>.mjs + host.json + package.json: zip deploy)
//   functions/gcp/<name>.ts   → dist/functions/gcp/<name>.zip   (<name>.mjs + package.json: source upload)
// and generates the action permission files the infrastructure grants from (infra/{aws,azure,gcp}/
// action-permissions.json), so what is deployed equals what the actions declare (test/infra checks drift).
//
// Not serverless-esbuild: it hangs forever on an esbuild error (toolchain.md). The AWS SDK is bundled
// (not taken from the runtime) so the artifact pins the SDK version we test with.
//
// Usage: node scripts/bundle-functions.mjs [--analyze] [--stats]   (also called by scripts/build.mjs)
//   --analyze: the packages that weigh most in each function's output; --stats: bytes and load times
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { crc32, deflateRawSync, inflateRawSync } from 'node:zlib';
import { build } from 'esbuild';
import { NODE_BUNDLE } from './node-bundle.mjs';

const CLOUDS = ['aws', 'azure', 'gcp'];

/** Entry files: one per function, `functions/<cloud>/<name>.ts` (helpers live in sub-folders). */
export function functionEntries(root) {
  const out = [];
  for (const cloud of CLOUDS) {
    const dir = join(root, 'functions', cloud);
    if (!existsSync(dir)) continue;
    for (const file of readdirSync(dir).sort()) {
      if (!file.endsWith('.ts') || file.endsWith('.d.ts') || !statSync(join(dir, file)).isFile()) continue;
      out.push({ cloud, name: basename(file, '.ts'), entry: join(dir, file) });
    }
  }
  return out;
}

const bundleDir = (root, fn) => join(root, 'dist', 'functions', fn.cloud, fn.name);
export const bundlePath = (root, fn) => join(bundleDir(root, fn), `${fn.name}.mjs`);
export const zipPath = (root, fn) => join(root, 'dist', 'functions', fn.cloud, `${fn.name}.zip`);

// ESM output with bundled CommonJS dependencies needs what a CommonJS module has in scope and an ES module
// lacks: a real `require` (for node built-ins) and `__dirname`/`__filename`. google-gax computes its proto
// folder from `__dirname` at module scope (`path.join(__dirname, '..', '..', 'build', 'protos')`), so a
// bundle holding it threw "ReferenceError: __dirname is not defined in ES module scope" on load. The paths
// are the bundle's own; nothing bundled reads files beside it (Compute runs on the REST fallback, whose
// proto JSON is bundled).
const BANNER = [
  "import { createRequire as __closeloopRequire } from 'node:module';",
  "import { dirname as __closeloopDirname } from 'node:path';",
  "import { fileURLToPath as __closeloopPath } from 'node:url';",
  'const require = __closeloopRequire(import.meta.url);',
  'const __filename = __closeloopPath(import.meta.url);',
  'const __dirname = __closeloopDirname(__filename);',
].join(' ');

/**
 * zod 4 re-exports every locale through `z.locales`, so `import { z } from 'zod'` pulls ~40 languages
 * (~250 KB minified) into each bundle although only English messages are used. Resolve the locales
 * index to English only; `z.locales.en` keeps working, no other locale is referenced anywhere.
 */
export const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(b) {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      /[\\/]zod[\\/]v4[\\/](classic|core)[\\/]/.test(args.importer)
        ? { path: join(dirname(args.importer), '../locales/en.js'), namespace: 'zod-locales' }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'zod-locales' }, (args) => ({
      contents: `export { default as en } from ${JSON.stringify(args.path)};`,
      resolveDir: dirname(args.path),
    }));
  },
};

/**
 * `import { z } from 'zod'` binds zod's namespace object, which refers to every zod export (JSON Schema
 * conversion, `z.compile`, every schema type), so one such import anywhere in a bundle keeps all of zod
 * (~190 KB minified) — and under code splitting in the chunk every entry loads at cold start, even when
 * only a lazily imported chunk (jira.js) holds the import. `import * as z from 'zod'` lets esbuild keep
 * only the members used (~100 KB). Our code is written that way (biome's noRestrictedImports keeps it so);
 * this rewrites the dependencies that import the named `z` (jira.js) at load, which means the same.
 */
const NAMED_Z_IMPORT = /import \{ z \} from (['"])zod\1;/g;
export const zodNamespaceInDependencies = {
  name: 'zod-namespace-in-dependencies',
  setup(b) {
    b.onLoad({ filter: /[\\/]node_modules[\\/]jira\.js[\\/].*\.mjs$/ }, (args) => ({
      contents: readFileSync(args.path, 'utf8').replace(NAMED_Z_IMPORT, "import * as z from 'zod';"),
      loader: 'js',
    }));
  },
};

/**
 * A function runs only its own cloud's actions (the AWS hub the AWS ones; each spoke its cloud's, under
 * its own identity), but the action registry imports every action and `createCloudClients` every
 * cloud's SDK: ~33 MB of libraries a function can never use. Per cloud, the other clouds' action SDKs
 * resolve to a stub that fails loudly if ever constructed, naming where that action runs:
 * - AWS hub: every `@azure/*` and `@google-cloud/*` package;
 * - Azure spoke: `@google-cloud/*` and the AWS action clients (S3, IAM, EC2); STS, EventBridge and the
 *   credential providers stay, they forward results to the hub bus through web-identity federation;
 * - GCP spoke: `@azure/*` and the same AWS action clients.
 */
export const STUBBED_PACKAGES = {
  aws: /^@(azure|google-cloud)\//,
  azure: /^(@google-cloud\/.*|@aws-sdk\/client-(s3|iam|ec2))$/,
  gcp: /^(@azure\/.*|@aws-sdk\/client-(s3|iam|ec2))$/,
};

/** The esbuild plugin stubbing `STUBBED_PACKAGES[cloud]` in the bundles of `cloud`'s functions. */
export function otherCloudsStubbedFor(cloud) {
  const where = { aws: 'the AWS hub', azure: 'the Azure spoke', gcp: 'the GCP spoke' }[cloud];
  return {
    name: `other-clouds-stubbed-${cloud}`,
    setup(b) {
      b.onResolve({ filter: STUBBED_PACKAGES[cloud] }, (args) => ({ path: args.path, namespace: 'other-cloud' }));
      b.onLoad({ filter: /.*/, namespace: 'other-cloud' }, (args) => ({
        loader: 'js',
        contents: `const message = ${JSON.stringify(`${args.path} is not bundled in ${where}: actions for that cloud run where its identity is`)};
class NotBundled { constructor() { throw new Error(message); } }
module.exports = new Proxy({}, { get: (_, name) => (name === '__esModule' || typeof name === 'symbol' ? undefined : NotBundled) });`,
      }));
    },
  };
}

/** The AWS hub's stub plugin (kept under its first name for callers of the bundler module). */
export const otherCloudsStubbed = otherCloudsStubbedFor('aws');

/**
 * Credential sources a Lambda function never reaches: the runtime puts the role's credentials in the
 * environment, and the default chain (`fromNodeProviderChain`) stops at `fromEnv`, its first link. The
 * shared-config-file, SSO, login and credential-process providers (and the SSO/OIDC/sign-in clients they
 * carry, ~70 KB minified) resolve to a provider that fails with a clear message if ever asked — the chain
 * treats that as "not this source" and moves on. Web identity (STS), container and instance metadata
 * credentials stay bundled.
 */
export const lambdaCredentialsOnly = {
  name: 'lambda-credentials-only',
  setup(b) {
    const filter = /^@aws-sdk\/credential-provider-(ini|sso|process|login)$/;
    b.onResolve({ filter }, (args) => ({ path: args.path, namespace: 'not-in-lambda' }));
    b.onLoad({ filter: /.*/, namespace: 'not-in-lambda' }, (args) => ({
      loader: 'js',
      contents: `const message = ${JSON.stringify(`${args.path} is not bundled: a Lambda function takes its credentials from the environment`)};
const provider = () => async () => { const e = new Error(message); e.name = 'CredentialsProviderError'; e.tryNextLink = true; throw e; };
export const fromIni = provider, fromSSO = provider, fromProcess = provider, fromLoginCredentials = provider;`,
    }));
  },
};

/**
 * `mnemonist/lru-cache` → scripts/lru-cache-shim.mjs: the DynamoDB client's endpoint cache is its only user in
 * the bundles, and mnemonist's cache with its iterator library (~7 KB) was read by every cold start of a
 * function with a store. The shim keeps the API the SDK calls, tested against mnemonist's own.
 */
export const smallLruCache = {
  name: 'small-lru-cache',
  setup(b) {
    b.onResolve({ filter: /^mnemonist\/lru-cache(\.js)?$/ }, () => ({
      path: fileURLToPath(new URL('./lru-cache-shim.mjs', import.meta.url)),
    }));
  },
};

/** esbuild per function: node20 ESM (runs on Lambda nodejs22.x and the local Node 20), module-first, minified. */
async function bundleOne(root, fn) {
  const outfile = bundlePath(root, fn);
  rmSync(bundleDir(root, fn), { recursive: true, force: true });
  // Bundles are split: what a handler imports with `await import()` (each action's cloud SDK, the AWS
  // SDK's credential sources past the environment, rarely used clients) becomes a chunk beside it, read
  // only when first used, so a cold start parses only what every invocation needs. Chunk names carry a
  // content hash, so the Azure app zip (infra/azure/app-zip.mjs) can merge the spokes' chunk folders:
  // one name is always one content.
  const result = await build({
    entryPoints: [fn.entry],
    outdir: bundleDir(root, fn),
    splitting: true,
    entryNames: '[name]',
    chunkNames: 'chunks/[name]-[hash]',
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    // ESM builds of the SDK and Powertools tree-shake far better than their CJS builds (toolchain.md).
    mainFields: ['module', 'main'],
    minify: true,
    legalComments: 'none',
    banner: { js: BANNER },
    logLevel: 'warning',
    metafile: true,
    // Provided by the Azure Functions host at run time (a virtual module), never installed.
    external: fn.cloud === 'azure' ? ['@azure/functions-core'] : [],
    plugins: [
      zodEnglishOnly,
      zodNamespaceInDependencies,
      smallLruCache,
      otherCloudsStubbedFor(fn.cloud),
      ...(fn.cloud === 'aws' ? [lambdaCredentialsOnly] : []),
    ],
  });
  // Beside the bundle folder, not in it (the zip takes the folder): what `--analyze` reads.
  writeFileSync(metafilePath(root, fn), JSON.stringify(result.metafile));
  return { outfile, metafile: result.metafile };
}

const metafilePath = (root, fn) => join(root, 'dist', 'functions', fn.cloud, `${fn.name}.meta.json`);

/** The package an input path belongs to (`node_modules/@scope/name/…` → `@scope/name`), else `(project)`. */
function packageOf(input) {
  const m = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\/(?!.*node_modules\/)/.exec(input);
  return m?.[1] ?? (input.includes(':') ? input.split(':')[0] : '(project)');
}

/**
 * Bytes each package contributes to a function's output, largest first, from the metafile the last
 * build wrote: `bytes` in every chunk, `coldBytes` in what a cold start reads (the entry and the chunks
 * it imports statically, transitively). Where to look when a bundle is over its budget.
 * @returns {Array<{ package: string, bytes: number, coldBytes: number }>}
 */
export function bundleComposition(root, fn) {
  const meta = JSON.parse(readFileSync(metafilePath(root, fn), 'utf8'));
  // Every `import()` target is an entry point of its own under splitting: the function's is the one named after it.
  const entry = Object.keys(meta.outputs).find((o) => o.endsWith(`${fn.cloud}/${fn.name}/${fn.name}.mjs`));
  const cold = new Set();
  const visit = (o) => {
    if (cold.has(o) || !meta.outputs[o]) return;
    cold.add(o);
    for (const i of meta.outputs[o].imports) if (i.kind === 'import-statement') visit(i.path);
  };
  if (entry) visit(entry);
  const sizes = new Map();
  for (const [o, output] of Object.entries(meta.outputs))
    for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) {
      const pkg = packageOf(input);
      const row = sizes.get(pkg) ?? { package: pkg, bytes: 0, coldBytes: 0 };
      row.bytes += bytesInOutput;
      if (cold.has(o)) row.coldBytes += bytesInOutput;
      sizes.set(pkg, row);
    }
  return [...sizes.values()].sort((a, b) => b.coldBytes - a.coldBytes || b.bytes - a.bytes);
}

/**
 * Bytes a cold start reads: the entry file and every chunk it imports statically, transitively (the
 * chunks behind `import()` load only when first used). Static imports in esbuild's ESM output are
 * `import…from"./x.mjs"` or `import"./x.mjs"`; a dynamic one is `import("./x.mjs")` and does not match.
 */
export function coldBytes(entryFile) {
  const seen = new Set();
  const visit = (file) => {
    if (seen.has(file) || !existsSync(file)) return 0;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    let n = Buffer.byteLength(text);
    for (const m of text.matchAll(/(?:from|import)\s*"(\.{1,2}\/[^"]+\.mjs)"/g)) n += visit(join(dirname(file), m[1]));
    return n;
  };
  return visit(entryFile);
}

/** Every file of a function's bundle folder (the entry and its chunks), as zip entries. */
function bundleFiles(root, fn) {
  const dir = bundleDir(root, fn);
  const out = [];
  const walk = (sub) => {
    for (const name of readdirSync(join(dir, sub)).sort()) {
      const rel = sub ? `${sub}/${name}` : name;
      if (statSync(join(dir, rel)).isDirectory()) walk(rel);
      else out.push({ name: rel, data: readFileSync(join(dir, rel)) });
    }
  };
  walk('');
  return out;
}

/**
 * The config folder loaded and validated with the project's own loader, as the JSON the AWS wiring reads
 * (`loadConfigJson`): a config error fails the build, and the YAML parser stays out of the bundles.
 */
export async function bundledConfig(root, configDir, { optional = false } = {}) {
  const stdin = {
    contents:
      "export { loadConfig } from './shared/adapters/config/load.ts'; export { defaultConfig } from './shared/core/config.ts';",
    resolveDir: root,
    loader: 'ts',
  };
  return withBundled(root, 'config', { stdin }, async ({ loadConfig, defaultConfig }) => {
    // Only the implicit examples folder may be absent (a package without examples): a named folder that is
    // missing is an error from loadConfig, not an artifact built on the defaults (no deny lists, no registry).
    const read = configDir && (!optional || existsSync(configDir));
    const config = read ? await loadConfig(configDir) : defaultConfig();
    // Same shape as the YAML files: exceptions under `exceptions.exceptions` (ExceptionsFileSchema).
    return {
      ...config,
      exceptions: { exceptions: config.exceptions },
      origin: read ? relative(root, configDir) || '.' : '(defaults)',
    };
  });
}

/** Files that go into the zip beside the bundle (per cloud's deployment format). */
function extraFiles(fn, config) {
  const files = [];
  if (fn.cloud === 'aws') files.push({ name: 'config.json', data: Buffer.from(`${JSON.stringify(config)}\n`) });
  if (fn.cloud === 'azure') {
    const host = {
      version: '2.0',
      extensionBundle: { id: 'Microsoft.Azure.Functions.ExtensionBundle', version: '[4.*, 5.0.0)' },
      // remediateQueued (functions/azure/remediate.ts): a run that throws (the result did not reach the hub)
      // is tried again a minute later, 5 times in all, then moved to remediate-requests-poison.
      extensions: { queues: { maxDequeueCount: 5, visibilityTimeout: '00:01:00' } },
    };
    files.push({ name: 'host.json', data: Buffer.from(`${JSON.stringify(host, null, 2)}\n`) });
  }
  if (fn.cloud === 'azure' || fn.cloud === 'gcp') {
    const pkg = { name: `closeloop-${fn.cloud}-${fn.name}`, private: true, type: 'module', main: `${fn.name}.mjs` };
    files.push({ name: 'package.json', data: Buffer.from(`${JSON.stringify(pkg, null, 2)}\n`) });
  }
  return files;
}

// ---- a small, deterministic ZIP writer (deflate via node:zlib; no dependency, no `zip` binary needed) ----
const DOS_TIME = 0; // 00:00:00
const DOS_DATE = (0 << 9) | (1 << 5) | 1; // 1980-01-01: fixed, so the same input gives the same zip

/** Writes a ZIP archive of `files` ([{ name, data: Buffer }]) to `target`. */
export function writeZip(target, files) {
  const locals = [];
  const centrals = [];
  let offset = 0;
  for (const file of files) {
    const name = Buffer.from(file.name, 'utf8');
    const compressed = deflateRawSync(file.data, { level: 9 });
    const crc = crc32(file.data) >>> 0;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed: 2.0 (deflate)
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(8, 8); // deflate
    local.writeUInt16LE(DOS_TIME, 10);
    local.writeUInt16LE(DOS_DATE, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(compressed.length, 18);
    local.writeUInt32LE(file.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    locals.push(local, name, compressed);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4); // made by: UNIX, so the permission bits below are honoured
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(8, 10);
    central.writeUInt16LE(DOS_TIME, 12);
    central.writeUInt16LE(DOS_DATE, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(compressed.length, 20);
    central.writeUInt32LE(file.data.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(((0o100644 << 16) >>> 0) >>> 0, 38); // regular file, rw-r--r--: Lambda must read it
    central.writeUInt32LE(offset, 42);
    centrals.push(central, name);
    offset += local.length + name.length + compressed.length;
  }
  const centralSize = centrals.reduce((n, b) => n + b.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(files.length, 8);
  end.writeUInt16LE(files.length, 10);
  end.writeUInt32LE(centralSize, 12);
  end.writeUInt32LE(offset, 16);
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, Buffer.concat([...locals, ...centrals, end]));
}

/** Reads the entries (name → inflated Buffer) back from a zip written by writeZip (tests use it). */
export function readZip(file) {
  const buf = readFileSync(file);
  const endAt = buf.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  const count = buf.readUInt16LE(endAt + 10);
  let at = buf.readUInt32LE(endAt + 16);
  const entries = new Map();
  for (let i = 0; i < count; i++) {
    const size = buf.readUInt32LE(at + 20);
    const nameLength = buf.readUInt16LE(at + 28);
    const extra = buf.readUInt16LE(at + 30) + buf.readUInt16LE(at + 32);
    const localAt = buf.readUInt32LE(at + 42);
    const name = buf.subarray(at + 46, at + 46 + nameLength).toString('utf8');
    const dataAt = localAt + 30 + buf.readUInt16LE(localAt + 26) + buf.readUInt16LE(localAt + 28);
    entries.set(name, inflateRawSync(buf.subarray(dataAt, dataAt + size)));
    at += 46 + nameLength + extra;
  }
  return entries;
}

// ---- permissions the infrastructure grants, generated from the action declarations ----

/** ARN patterns per AWS service for action permissions (targets come from findings at run time). */
// biome-ignore-start lint/suspicious/noTemplateCurlyInString: CloudFormation Fn::Sub placeholders, not JS templates
const AWS_RESOURCES = {
  s3: ['arn:${AWS::Partition}:s3:::*'],
  iam: ['arn:${AWS::Partition}:iam::${AWS::AccountId}:*'],
  // Snapshot ARNs carry no account id (arn:aws:ec2:region::snapshot/id), hence the second pattern.
  ec2: ['arn:${AWS::Partition}:ec2:*:${AWS::AccountId}:*', 'arn:${AWS::Partition}:ec2:*::snapshot/*'],
  guardduty: ['arn:${AWS::Partition}:guardduty:*:${AWS::AccountId}:detector/*'],
  securityhub: ['arn:${AWS::Partition}:securityhub:*:${AWS::AccountId}:hub/default'],
};
// biome-ignore-end lint/suspicious/noTemplateCurlyInString: end of the Fn::Sub patterns
/**
 * Actions whose API has no resource-level permissions: IAM requires Resource "*" for them.
 * @see https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html (Describe*)
 */
const needsStar = (action) =>
  /^ec2:Describe/.test(action) || /^tag:/.test(action) || /^sts:GetCallerIdentity$/.test(action);

/**
 * IAM statements granting exactly `actions`, grouped by resource pattern (CloudFormation JSON with Fn::Sub).
 * `prefix` starts each Sid: `Action…` for the actions' permissions, `Verify…` for their verify reads.
 */
export function awsActionStatements(actions, prefix = 'Action') {
  const groups = new Map();
  for (const action of [...new Set(actions)].sort()) {
    const service = action.split(':')[0];
    const key = needsStar(action) ? '*' : service;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(action);
  }
  const statements = [];
  for (const [key, list] of [...groups.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    const sid = `${prefix}${key === '*' ? 'NoResourceLevel' : key.replace(/[^A-Za-z0-9]/g, '').replace(/^./, (c) => c.toUpperCase())}`;
    const patterns = key === '*' ? undefined : AWS_RESOURCES[key];
    statements.push({
      Sid: sid,
      Effect: 'Allow',
      Action: list,
      // "*" only where the API has no resource-level permissions, or a service without a mapped ARN pattern
      // (add it to AWS_RESOURCES in scripts/bundle-functions.mjs to narrow it).
      Resource: patterns ? patterns.map((p) => ({ 'Fn::Sub': p })) : '*',
    });
  }
  return statements;
}

/**
 * IAM writes on a role that would change what the role may do or who may assume it. The roles that hold
 * the actions' IAM permissions (the hub's remediate role, the member acting role) are denied these on
 * closeloop's own roles: a forged finding naming one cannot revoke closeloop's sessions (an
 * `AWSRevokeOlderSessions` deny) and a compromised remediate function cannot grant itself more. An explicit
 * Deny wins over the Allow on `iam::<account>:*`.
 * @see https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
 */
export const OWN_ROLE_WRITES = [
  'iam:AttachRolePolicy',
  'iam:DeleteRole',
  'iam:DeleteRolePermissionsBoundary',
  'iam:DeleteRolePolicy',
  'iam:DetachRolePolicy',
  'iam:PutRolePermissionsBoundary',
  'iam:PutRolePolicy',
  'iam:UpdateAssumeRolePolicy',
  'iam:UpdateRole',
];

/**
 * The actions' S3 bucket writes (every `s3:` permission they declare that is not a read). The hub's remediate
 * role holds them on every bucket (a finding may name any) and is denied them on closeloop's own evidence
 * buckets (serverless.yml `protect-own-buckets`): a forged finding or a compromised function cannot lift their
 * Block Public Access, open them with a policy or ACL, or lock the evidence writers out with a policy.
 */
export const ownBucketWrites = (aws) => aws.filter((p) => p.startsWith('s3:') && !/^s3:(Get|List)/.test(p));

/** The Tagging API read the acting and reading member roles allow (no resource-level permissions). */
const TAG_READ = { Sid: 'TagRead', Effect: 'Allow', Action: 'tag:GetResources', Resource: '*' };
/**
 * IAM users' and roles' tags, which the Tagging API does not read (its GetResources leaves them out): the skip
 * tag on a role or user is seen before a fix, and their owner tags in enrichment.
 */
const IAM_TAG_READ = {
  Sid: 'IamTagRead',
  Effect: 'Allow',
  Action: ['iam:ListUserTags', 'iam:ListRoleTags'],
  Resource: [
    // biome-ignore-start lint/suspicious/noTemplateCurlyInString: CloudFormation Fn::Sub variables, not JS templates
    { 'Fn::Sub': 'arn:${AWS::Partition}:iam::${AWS::AccountId}:user/*' },
    { 'Fn::Sub': 'arn:${AWS::Partition}:iam::${AWS::AccountId}:role/*' },
    // biome-ignore-end lint/suspicious/noTemplateCurlyInString: end of the Fn::Sub variables
  ],
};

/**
 * The CloudFormation template of the member account roles (infra/aws/member-role.json), for every member
 * account (a service-managed StackSet over the organization, or one stack per account):
 *   - `<RoleName>`: exactly the AWS actions' declared permissions plus the tag read, trusted by the hub's
 *     remediate role only (serverless.yml output MemberActingRoleArns), denied IAM writes on these roles
 *     themselves ({@link OWN_ROLE_WRITES});
 *   - `<RoleName>-verify`: exactly the actions' read-only `verifyPermissions`, trusted by the hub's verify
 *     role only (output MemberVerifyingRoleArn), created when that ARN is given;
 *   - `<RoleName>-read`: the tag read alone, trusted by the hub's ingest role (output MemberReadingRoleArn),
 *     created when that ARN is given (the hub's enrichment lookups read member tags through it).
 * The hub assumes them by name (serverless.yml param memberRole): the same name in every account.
 */
export function memberRoleTemplate(statements, verifyStatements) {
  const doc = (Statement) => ({ Version: '2012-10-17', Statement });
  const trust = (principal) => doc([{ Effect: 'Allow', Principal: { AWS: principal }, Action: 'sts:AssumeRole' }]);
  return {
    AWSTemplateFormatVersion: '2010-09-09',
    Description:
      'closeloop member account roles: the hub acts and reads here through them. Generated by scripts/bundle-functions.mjs from the action declarations; do not edit.',
    Parameters: {
      RoleName: {
        Type: 'String',
        Default: 'closeloop-member',
        // 64 characters at most with the longest suffix, `-verify`.
        AllowedPattern: '[\\w+=,.@-]{1,57}',
        Description: "The hub's memberRole parameter (the same name in every account).",
      },
      ActingRoleArns: {
        Type: 'CommaDelimitedList',
        Description: "The hub stack's output MemberActingRoleArns (its remediate role).",
      },
      VerifyingRoleArn: {
        Type: 'String',
        Default: '',
        Description: "The hub stack's output MemberVerifyingRoleArn (its verify role); empty: no verify role here.",
      },
      ReadingRoleArn: {
        Type: 'String',
        Default: '',
        Description: "The hub stack's output MemberReadingRoleArn (its ingest role); empty: no read role here.",
      },
    },
    Conditions: {
      Reads: { 'Fn::Not': [{ 'Fn::Equals': [{ Ref: 'ReadingRoleArn' }, ''] }] },
      Verifies: { 'Fn::Not': [{ 'Fn::Equals': [{ Ref: 'VerifyingRoleArn' }, ''] }] },
    },
    Resources: {
      ActingRole: {
        Type: 'AWS::IAM::Role',
        Properties: {
          RoleName: { Ref: 'RoleName' },
          Description: 'closeloop hub: plans, applies and rolls back its actions in this account',
          MaxSessionDuration: 3600,
          AssumeRolePolicyDocument: trust({ Ref: 'ActingRoleArns' }),
          Policies: [
            { PolicyName: 'closeloop-actions', PolicyDocument: doc(statements) },
            { PolicyName: 'closeloop-tag-read', PolicyDocument: doc([TAG_READ, IAM_TAG_READ]) },
            {
              PolicyName: 'closeloop-protect-own-roles',
              PolicyDocument: doc([
                {
                  Sid: 'DenyOwnRoleWrites',
                  Effect: 'Deny',
                  Action: OWN_ROLE_WRITES,
                  Resource: [
                    // biome-ignore-start lint/suspicious/noTemplateCurlyInString: CloudFormation Fn::Sub variables, not JS templates
                    { 'Fn::Sub': 'arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${RoleName}' },
                    { 'Fn::Sub': 'arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${RoleName}-*' },
                    // biome-ignore-end lint/suspicious/noTemplateCurlyInString: end of the Fn::Sub variables
                  ],
                },
              ]),
            },
          ],
        },
      },
      VerifyingRole: {
        Type: 'AWS::IAM::Role',
        Condition: 'Verifies',
        Properties: {
          // biome-ignore lint/suspicious/noTemplateCurlyInString: a CloudFormation Fn::Sub variable, not a JS template
          RoleName: { 'Fn::Sub': '${RoleName}-verify' },
          Description: "closeloop hub: re-reads this account's remediated resources (read-only)",
          MaxSessionDuration: 3600,
          AssumeRolePolicyDocument: trust({ Ref: 'VerifyingRoleArn' }),
          Policies: [{ PolicyName: 'closeloop-verify', PolicyDocument: doc(verifyStatements) }],
        },
      },
      ReadingRole: {
        Type: 'AWS::IAM::Role',
        Condition: 'Reads',
        Properties: {
          // biome-ignore lint/suspicious/noTemplateCurlyInString: a CloudFormation Fn::Sub variable, not a JS template
          RoleName: { 'Fn::Sub': '${RoleName}-read' },
          Description: "closeloop hub: reads this account's resource tags for enrichment",
          MaxSessionDuration: 3600,
          AssumeRolePolicyDocument: trust({ Ref: 'ReadingRoleArn' }),
          Policies: [{ PolicyName: 'closeloop-tag-read', PolicyDocument: doc([TAG_READ, IAM_TAG_READ]) }],
        },
      },
    },
    Outputs: {
      ActingRoleArn: { Value: { 'Fn::GetAtt': ['ActingRole', 'Arn'] } },
      VerifyingRoleArn: { Condition: 'Verifies', Value: { 'Fn::GetAtt': ['VerifyingRole', 'Arn'] } },
      ReadingRoleArn: { Condition: 'Reads', Value: { 'Fn::GetAtt': ['ReadingRole', 'Arn'] } },
    },
  };
}

/** A scratch module inside the repo, so its external imports resolve from the project's node_modules. */
const scratchFile = (root, name) => join(root, 'dist', '.scratch', `${name}-${process.pid}-${Date.now()}.mjs`);

/**
 * Bundles project TypeScript (`entryPoints` or `stdin`) into a scratch module, hands the imported module
 * to `use`, and removes the scratch file afterwards.
 */
async function withBundled(root, name, input, use) {
  const outfile = scratchFile(root, name);
  await build({
    ...input,
    outfile,
    ...NODE_BUNDLE,
  });
  try {
    return await use(await import(pathToFileURL(outfile).href));
  } finally {
    rmSync(outfile, { force: true });
  }
}

/**
 * Loads the action registry (TypeScript) through esbuild and returns `allPermissions` per provider, and
 * under `verify` the read-only `allVerifyPermissions` per provider.
 */
export async function registryPermissions(root) {
  const registry = join(root, 'shared/actions/registry.ts');
  if (!existsSync(registry)) return undefined;
  return withBundled(root, 'registry', { entryPoints: [registry] }, async (mod) => {
    const out = { verify: {} };
    for (const provider of CLOUDS) {
      out[provider] = [...new Set(await mod.allPermissions(provider))].sort();
      out.verify[provider] = [...new Set(await mod.allVerifyPermissions(provider))].sort();
    }
    return out;
  });
}

/** The generated permission files' contents, from the registry's declarations. */
export function permissionFiles(perms) {
  return {
    'infra/aws/action-permissions.json': {
      actions: perms.aws,
      statements: awsActionStatements(perms.aws),
      // Denied to the roles holding `statements` on closeloop's own roles (serverless.yml, member-role.json).
      ownRoleWrites: OWN_ROLE_WRITES,
      // Denied to the remediate role on closeloop's evidence buckets (serverless.yml).
      ownBucketWrites: ownBucketWrites(perms.aws),
    },
    // The verify function's grant: the actions' read-only verify permissions, nothing else of theirs.
    'infra/aws/verify-permissions.json': {
      actions: perms.verify.aws,
      statements: awsActionStatements(perms.verify.aws, 'Verify'),
    },
    'infra/aws/member-role.json': memberRoleTemplate(
      awsActionStatements(perms.aws),
      awsActionStatements(perms.verify.aws, 'Verify'),
    ),
    'infra/azure/action-permissions.json': { actions: perms.azure },
    'infra/gcp/action-permissions.json': { permissions: perms.gcp },
  };
}

/** Writes infra/{aws,azure,gcp}/action-permissions.json, infra/aws/verify-permissions.json and member-role.json. Returns the paths written (none without a registry). */
export async function writePermissionFiles({ root }) {
  const perms = await registryPermissions(root);
  if (!perms) {
    console.warn('bundle-functions: shared/actions/registry.ts not found; action permission files left as they are');
    return [];
  }
  const written = [];
  for (const [path, content] of Object.entries(permissionFiles(perms))) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), `${JSON.stringify(content, null, 2)}\n`);
    written.push(path);
  }
  return written;
}

/**
 * Bundles and zips every function. `configDir` (default $CLOSELOOP_CONFIG_DIR, else examples/config when
 * present) is loaded, validated and written into each AWS artifact as config.json (CLOSELOOP_CONFIG in serverless.yml).
 */
export async function bundleFunctions({ root, configDir, only } = {}) {
  const named = configDir ?? process.env.CLOSELOOP_CONFIG_DIR;
  const cfg = named ?? join(root, 'examples/config');
  await writePermissionFiles({ root });
  const config = await bundledConfig(root, cfg, { optional: named === undefined });
  const results = [];
  const failed = [];
  for (const fn of functionEntries(root)) {
    if (only && !only.includes(`${fn.cloud}/${fn.name}`)) continue;
    // One broken function must not leave the others unbuilt; the failures are reported together.
    const built = await bundleOne(root, fn).catch((e) => {
      failed.push(`${fn.cloud}/${fn.name}: ${e.message.split('\n')[0]}`);
      return undefined;
    });
    if (!built) continue;
    const { outfile } = built;
    const files = [...bundleFiles(root, fn), ...extraFiles(fn, config)];
    writeZip(zipPath(root, fn), files);
    results.push({
      function: `${fn.cloud}/${fn.name}`,
      bundle: relative(root, outfile),
      zip: relative(root, zipPath(root, fn)),
      bytes: coldBytes(outfile),
      totalBytes: files.reduce((n, f) => n + (f.name.endsWith('.mjs') ? f.data.length : 0), 0),
    });
  }
  if (failed.length > 0) throw new Error(`bundling failed for ${failed.length} function(s):\n  ${failed.join('\n  ')}`);
  return results;
}

/** Environment a bundle needs to load (module scope builds its ports from it); dummy, never a real cloud. */
const LOAD_ENV = {
  CLOSELOOP_TABLE: 'closeloop-bench',
  CLOSELOOP_BUS: 'closeloop-bench',
  CLOSELOOP_HUB_BUS_ARN: 'arn:aws:events:us-east-1:111122223333:event-bus/closeloop-bench',
  CLOSELOOP_FORWARDER_ROLE_ARN: 'arn:aws:iam::111122223333:role/closeloop-bench-forwarder',
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
  AWS_SECRET_ACCESS_KEY: 'bench',
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  POWERTOOLS_DEV: 'false',
};

/**
 * Wall time of one fresh `node` process that imports the bundle (node's own start-up included), with
 * the dummy environment its module scope needs. Throws with the error lines when the bundle cannot load.
 */
export function loadOnce(file) {
  return importFresh([file], file).processMs;
}

/**
 * One cold load of the bundle in a fresh `node` process: `importMs`, the module load itself (from the
 * `import()` to the module evaluated: reading, compiling and running the bundle's top level, nothing
 * cached), and `processMs`, the whole process (node's start-up, which no bundle changes, included).
 */
export function loadTimes(file) {
  return importFresh([file], file);
}

/**
 * Imports every chunk of a function's bundle (what its handler loads later with `import()`: action SDKs,
 * the config schemas, jira.js…) in one fresh `node` process. Throws naming the bundle when one cannot load.
 */
export function loadChunks(root, fn) {
  const dir = join(bundleDir(root, fn), 'chunks');
  const chunks = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.mjs')) : [];
  return importFresh(
    chunks.map((f) => join(dir, f)),
    `${fn.cloud}/${fn.name} chunks`,
  ).processMs;
}

/**
 * One fresh `node` importing `files` in order: the process's wall time and, timed inside it, the imports'.
 * Throws with the error lines when one fails.
 */
function importFresh(files, label) {
  const started = process.hrtime.bigint();
  const imports = files.map((f) => `await import(${JSON.stringify(pathToFileURL(f).href)});`).join(' ');
  const script = `const t0 = performance.now(); ${imports} process.stdout.write('\\nimportMs=' + (performance.now() - t0));`;
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { PATH: process.env.PATH ?? '', ...LOAD_ENV },
    encoding: 'utf8',
  });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (run.status !== 0) {
    // Minified bundles print whole source lines in a stack: keep the error lines, each clipped.
    const lines = run.stderr
      .trim()
      .split('\n')
      .filter((l) => /^(\w*Error\b|Error \[|\s+at )/.test(l))
      .slice(0, 2)
      .map((l) => (l.length > 200 ? `${l.slice(0, 200)}…` : l));
    const where = run.stderr.trim().split('\n')[0]?.slice(0, 200) ?? '';
    throw new Error(
      `loading ${label} failed (exit ${run.status}): ${lines.length > 0 ? lines.join(' | ') : `thrown at ${where}`}`,
    );
  }
  const importMs = Number(/importMs=([\d.]+)\s*$/.exec(run.stdout)?.[1]);
  return { processMs: ms, importMs: Number.isFinite(importMs) ? importMs : ms };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};

/**
 * For the bench: each function's bundle size (`bytes`: what a cold start reads, the entry and its static
 * chunks, see coldBytes; `totalBytes`: with the lazily loaded chunks) and cold module-load time, median of
 * `runs` fresh processes: `loadMs`, the import of the bundle timed inside the process (see loadTimes), and
 * `processMs`, the whole process's wall time (node's own start-up included, see `nodeStartMs`). Bundles first when they are
 * missing. A function that fails to bundle or load is listed with `loadMs: null` and its `error`, so one
 * broken function never hides the others' figures.
 * @returns {Promise<Array<{ function: string, bytes: number, totalBytes?: number, loadMs: number | null, processMs?: number, error?: string }>>}
 */
export async function bundleStats({ root, runs = 20, rebuild = false } = {}) {
  const fns = functionEntries(root);
  let buildError;
  if (rebuild || fns.some((fn) => !existsSync(bundlePath(root, fn))))
    await bundleFunctions({ root }).catch((e) => {
      buildError = e.message;
    });
  return fns.map((fn) => {
    const file = bundlePath(root, fn);
    const name = `${fn.cloud}/${fn.name}`;
    if (!existsSync(file)) return { function: name, bytes: 0, loadMs: null, error: buildError ?? 'not bundled' };
    try {
      const times = Array.from({ length: runs }, () => loadTimes(file));
      return {
        function: name,
        bytes: coldBytes(file),
        totalBytes: bundleFiles(root, fn).reduce((n, f) => n + (f.name.endsWith('.mjs') ? f.data.length : 0), 0),
        loadMs: Math.round(median(times.map((t) => t.importMs)) * 10) / 10,
        processMs: Math.round(median(times.map((t) => t.processMs)) * 10) / 10,
      };
    } catch (e) {
      return { function: name, bytes: statSync(file).size, loadMs: null, error: e.message };
    }
  });
}

/** Median wall time of a fresh `node` doing nothing: the floor under every `loadMs`. */
export function nodeStartMs(runs = 10) {
  const times = Array.from({ length: runs }, () => {
    const started = process.hrtime.bigint();
    spawnSync(process.execPath, ['-e', ''], { env: { PATH: process.env.PATH ?? '' } });
    return Number(process.hrtime.bigint() - started) / 1e6;
  });
  return Math.round(median(times) * 10) / 10;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const built = await bundleFunctions({ root });
  for (const b of built)
    console.log(`${b.function.padEnd(24)} ${(b.bytes / 1024).toFixed(0).padStart(5)} KB  ${b.zip}`);
  if (process.argv.includes('--analyze'))
    for (const fn of functionEntries(root)) {
      const top = bundleComposition(root, fn).slice(0, 8);
      console.log(
        `\n${fn.cloud}/${fn.name}: ${top.map((p) => `${p.package} ${(p.bytes / 1024).toFixed(0)} KB`).join(', ')}`,
      );
    }
  if (process.argv.includes('--stats')) console.table(await bundleStats({ root }));
}
