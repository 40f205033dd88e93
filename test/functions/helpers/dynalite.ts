/** Starts dynalite (DynamoDB on in-memory LevelDB) on a free 127.0.0.1 port and creates closeloop's table. */
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';

type DynaliteFactory = (options: { createTableMs: number; deleteTableMs: number; updateTableMs: number }) => Server;

// dynalite is CommonJS without type declarations: load it through require and name the one call we make.
const dynalite: DynaliteFactory = createRequire(import.meta.url)('dynalite');

export interface LocalDynamo {
  client: DynamoDBClient;
  endpoint: string;
  /** Creates a table with the pk/sk layout of serverless.yml's CasesTable (or another key schema). */
  createTable(name: string, keys?: { hash: string; range?: string }): Promise<void>;
  stop(): Promise<void>;
}

export async function startDynalite(): Promise<LocalDynamo> {
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address: AddressInfo | string | null = server.address();
  if (address === null || typeof address === 'string') throw new Error('dynalite did not bind a TCP port');
  const { port } = address;
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'test-secret' },
  });
  return {
    client,
    endpoint,
    async createTable(name, keys = { hash: 'pk', range: 'sk' }) {
      const schema = [
        { AttributeName: keys.hash, KeyType: 'HASH' as const },
        ...(keys.range ? [{ AttributeName: keys.range, KeyType: 'RANGE' as const }] : []),
      ];
      await client.send(
        new CreateTableCommand({
          TableName: name,
          BillingMode: 'PAY_PER_REQUEST',
          KeySchema: schema,
          AttributeDefinitions: schema.map((k) => ({ AttributeName: k.AttributeName, AttributeType: 'S' as const })),
        }),
      );
    },
    async stop() {
      client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
