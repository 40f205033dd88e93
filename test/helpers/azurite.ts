/**
 * Starts Azurite's blob service (from the npm package, in memory) on a free 127.0.0.1 port for one
 * test file, with the well-known development account `devstoreaccount1`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { StorageSharedKeyCredential } from '@azure/storage-blob';

export const AZURITE_ACCOUNT = 'devstoreaccount1';
/** Azurite's published development key (not a secret). */
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

/** A free 127.0.0.1 port. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      s.close(() => resolve(port));
    });
  });
}

const canConnect = (port: number) =>
  new Promise<boolean>((resolve) => {
    const sock = connect(port, '127.0.0.1');
    sock.once('connect', () => {
      sock.end();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });

export interface Azurite {
  url: string;
  credential: StorageSharedKeyCredential;
  stop(): Promise<void>;
}

/**
 * Spawns azurite-blob on `port` — its data in memory, or in the folder `location` so that a restart on the
 * same port finds it — and waits until it accepts connections.
 */
export async function spawnAzurite(port: number, location?: string): Promise<{ stop(): Promise<void> }> {
  const bin = join(process.cwd(), 'node_modules', '.bin', 'azurite-blob');
  const storage = location === undefined ? ['--inMemoryPersistence'] : ['--location', location];
  const child: ChildProcess = spawn(
    bin,
    [
      '--blobHost',
      '127.0.0.1',
      '--blobPort',
      String(port),
      ...storage,
      '--disableTelemetry',
      '--skipApiVersionCheck',
      '--silent',
    ],
    { stdio: 'ignore' },
  );
  const deadline = Date.now() + 20_000;
  while (!(await canConnect(port))) {
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill();
      throw new Error(`azurite-blob did not start on port ${port}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill();
      }),
  };
}

export async function startAzurite(): Promise<Azurite> {
  const port = await freePort();
  const { stop } = await spawnAzurite(port);
  return {
    url: `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`,
    credential: new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
    stop,
  };
}
