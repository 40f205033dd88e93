// esbuild's options for a Node ESM module of the project's own code with its dependencies left to
// node_modules: the CLI (build.mjs), the bench (bench.mjs) and the scratch modules of the function bundler.
export const NODE_BUNDLE = Object.freeze({
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  logLevel: 'warning',
});
