import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundledConfig } from '../../../scripts/bundle-functions.mjs';
import { loadConfig } from '../../../shared/adapters/config/load.js';
import { loadConfigJson } from '../../../shared/adapters/wiring/aws.js';
import { ConfigError } from '../../../shared/core/errors.js';

// The AWS artifact's config.json as the bundler writes it, read back the way a function reads it.
let dir: string;
let json: Record<string, unknown>;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'closeloop-bundled-config-'));
  json = (await bundledConfig(process.cwd(), join(process.cwd(), 'examples/config'))) as Record<string, unknown>;
}, 60_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('loadConfigJson', () => {
  it('reads the config the bundler wrote from examples/config as loadConfig reads the folder', async () => {
    // Prepare
    const file = join(dir, 'config.json');
    await writeFile(file, JSON.stringify(json));
    // Act
    const config = await loadConfigJson(file);
    // Assess
    const { origin: _, ...fromFolder } = await loadConfig('examples/config');
    expect({ ...config, origin: undefined }).toEqual({ ...fromFolder, origin: undefined });
    expect(config.origin).toBe('examples/config');
  });

  it('names the invalid field when the bundled config does not validate', async () => {
    // Prepare
    const file = join(dir, 'bad.json');
    const policy = json.policy as { decide: Record<string, unknown> };
    await writeFile(file, JSON.stringify({ ...json, policy: { ...policy, decide: { ...policy.decide, skipTag: 7 } } }));
    // Act
    const read = loadConfigJson(file);
    // Assess
    await expect(read).rejects.toThrow(ConfigError);
    await expect(read).rejects.toThrow(/policy\.decide\.skipTag/);
  });

  it('refuses a bundled never-touch glob that can never match (a config.json edited by hand)', async () => {
    // Prepare
    const file = join(dir, 'glob.json');
    const policy = json.policy as { decide: Record<string, unknown> };
    const decide = { ...policy.decide, allowlist: { resources: ['arn:asw:s3:::acme-audit-logs*'] } };
    await writeFile(file, JSON.stringify({ ...json, policy: { ...policy, decide } }));
    // Act
    const read = loadConfigJson(file);
    // Assess
    await expect(read).rejects.toThrow(/policy\.decide\.allowlist\.resources\.0: .*can never match a resource id/);
  });

  it('fails with a ConfigError when the file is missing', async () => {
    // Act
    const read = loadConfigJson(join(dir, 'absent.json'));
    // Assess
    await expect(read).rejects.toThrow(/cannot read the bundled config/);
  });
});

describe('bundledConfig', () => {
  it('fails the build when the named config folder does not exist (no artifact on the defaults)', async () => {
    // Act
    const built = bundledConfig(process.cwd(), join(dir, 'my-confg'));
    // Assess
    await expect(built).rejects.toThrow(/my-confg: no such config folder/);
  }, 60_000);

  it('uses the defaults when the implicit examples folder is absent', async () => {
    // Act
    const built = (await bundledConfig(process.cwd(), join(dir, 'examples/config'), { optional: true })) as {
      origin: string;
    };
    // Assess
    expect(built.origin).toBe('(defaults)');
  }, 60_000);
});
