/**
 * Ties what a function's code calls on its store to what its IAM role grants: record the DocStore calls
 * a code path makes, replay them on the DynamoDB adapter (dynalite) to learn the DynamoDB actions they
 * send, and read the role's statements from serverless.yml.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { DynamoDocStore } from '../../shared/adapters/store/dynamodb.js';
import type { DocStore } from '../../shared/core/ports.js';
import { startDynalite } from '../functions/helpers/dynalite.js';

type StoreCall = { method: string; args: unknown[] };

/** A DocStore that records every call (method and arguments) before passing it on. */
export function recordingStore(store: DocStore): { store: DocStore; calls: StoreCall[] } {
  const calls: StoreCall[] = [];
  const proxy = new Proxy(store, {
    get(target, key, receiver) {
      const value: unknown = Reflect.get(target, key, receiver);
      if (typeof value !== 'function' || typeof key !== 'string') return value;
      return (...args: unknown[]) => {
        calls.push({ method: key, args: structuredClone(args) });
        return Reflect.apply(value, target, args);
      };
    },
  });
  return { store: proxy, calls };
}

/** The DynamoDB actions (`dynamodb:DeleteItem`) the DynamoDB adapter sends for these store calls. */
export async function dynamoActionsOf(calls: readonly StoreCall[]): Promise<string[]> {
  const local = await startDynalite();
  try {
    await local.createTable('closeloop-grants');
    const sent = new Set<string>();
    local.client.middlewareStack.add(
      (next, context) => async (args) => {
        sent.add(`dynamodb:${String(context.commandName).replace(/Command$/, '')}`);
        return next(args);
      },
      { step: 'initialize', name: 'recordActions' },
    );
    const store = new DynamoDocStore(local.client, 'closeloop-grants');
    for (const { method, args } of calls) {
      // The outcome does not matter (a conditional write may fail here): only which requests are sent.
      await Promise.resolve(Reflect.apply(Reflect.get(store, method) as () => unknown, store, args)).catch(() => {});
    }
    return [...sent].sort();
  } finally {
    await local.stop();
  }
}

/** The actions every statement of `role` in serverless.yml allows on the cases table (conditional policies included). */
export function tableGrants(role: string): string[] {
  const yml = parse(readFileSync(join(import.meta.dirname, '../../serverless.yml'), 'utf8')) as {
    resources: { Resources: Record<string, { Properties: { Policies: unknown[] } }> };
  };
  const policies = yml.resources.Resources[role]?.Properties.Policies ?? [];
  const statements = policies.flatMap((p) => {
    const policy = (p as { 'Fn::If'?: unknown[] })['Fn::If']?.[1] ?? p;
    return (policy as { PolicyDocument: { Statement: Array<{ Action: string | string[]; Resource: unknown }> } })
      .PolicyDocument.Statement;
  });
  return statements
    .filter((s) => JSON.stringify(s.Resource).includes('CasesTable'))
    .flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]));
}
