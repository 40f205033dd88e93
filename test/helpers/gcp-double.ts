/**
 * A local HTTP double of the Google JSON API paths the actions' clients call: Cloud Storage
 * (`/storage/v1/b/{bucket}`, `/iam`) and Compute firewalls (`/compute/v1/projects/{p}/global/firewalls/{f}`
 * and the global operation the patch returns). It keeps state, records every request, and can answer
 * one request with an injected status (403, 404, 429 …).
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { CloudClientOptions } from '../../shared/actions/clients.js';

export interface RecordedRequest {
  method: string;
  path: string;
  body: unknown;
}

export interface GcpDouble {
  buckets: Map<
    string,
    {
      iam: { bindings: Array<{ role: string; members: string[] }>; etag: string; version: number };
      metadata: Record<string, unknown>;
    }
  >;
  firewalls: Map<string, Record<string, unknown>>;
  requests: RecordedRequest[];
  /** Answers the next request whose path matches with this status (once). */
  failNext(pathIncludes: string, status: number, reason?: string): void;
  options: NonNullable<CloudClientOptions['gcp']>;
  stop(): Promise<void>;
}

const readBody = (req: IncomingMessage) =>
  new Promise<unknown>((resolve) => {
    let data = '';
    req.on('data', (c) => {
      data += c;
    });
    req.on('end', () => resolve(data ? JSON.parse(data) : undefined));
  });

export async function startGcpDouble(): Promise<GcpDouble> {
  const buckets: GcpDouble['buckets'] = new Map();
  const firewalls: GcpDouble['firewalls'] = new Map();
  const requests: RecordedRequest[] = [];
  const failures: Array<{ path: string; status: number; reason: string }> = [];
  let etag = 1;
  let op = 0;

  const server: Server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const body = await readBody(req);
    requests.push({ method: req.method ?? 'GET', path: url.pathname, body });
    const send = (status: number, json: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(json));
    };
    const fail = failures.findIndex((f) => url.pathname.includes(f.path));
    if (fail >= 0) {
      const [f] = failures.splice(fail, 1);
      if (f) return send(f.status, { error: { code: f.status, message: f.reason, errors: [{ reason: f.reason }] } });
    }
    const gcs = /^\/storage\/v1\/b\/([^/]+)(\/iam)?$/.exec(url.pathname);
    if (gcs?.[1]) {
      const b = buckets.get(gcs[1]);
      if (!b) return send(404, { error: { code: 404, message: 'The specified bucket does not exist.' } });
      if (gcs[2]) {
        if (req.method === 'PUT') {
          const next = body as {
            bindings: Array<{ role: string; members: string[] }>;
            version?: number;
            etag?: string;
          };
          if (next.etag && next.etag !== b.iam.etag)
            return send(412, { error: { code: 412, message: 'etag mismatch' } });
          b.iam = { bindings: next.bindings, version: next.version ?? 1, etag: `BwE${++etag}` };
        }
        return send(200, { kind: 'storage#policy', resourceId: `projects/_/buckets/${gcs[1]}`, ...b.iam });
      }
      if (req.method === 'PATCH')
        b.metadata = {
          ...b.metadata,
          ...(body as Record<string, unknown>),
          metageneration: String(Number(b.metadata.metageneration ?? 1) + 1),
        };
      return send(200, { kind: 'storage#bucket', name: gcs[1], id: gcs[1], ...b.metadata });
    }
    const fw = /^\/compute\/v1\/projects\/([^/]+)\/global\/firewalls\/([^/]+)$/.exec(url.pathname);
    if (fw?.[2]) {
      const rule = firewalls.get(fw[2]);
      if (!rule) return send(404, { error: { code: 404, message: `The resource '${fw[2]}' was not found` } });
      if (req.method === 'PATCH') {
        Object.assign(rule, body);
        const name = `operation-${++op}`;
        return send(200, {
          kind: 'compute#operation',
          name,
          id: String(op),
          operationType: 'patch',
          status: 'DONE',
          progress: 100,
        });
      }
      return send(200, { kind: 'compute#firewall', ...rule });
    }
    const opm = /^\/compute\/v1\/projects\/([^/]+)\/global\/operations\/([^/]+?)(\/wait)?$/.exec(url.pathname);
    if (opm?.[2]) return send(200, { kind: 'compute#operation', name: opm[2], status: 'DONE', progress: 100 });
    send(404, { error: { code: 404, message: `no route ${req.method} ${url.pathname}` } });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    buckets,
    firewalls,
    requests,
    failNext: (path, status, reason = 'injected') => failures.push({ path, status, reason }),
    options: {
      projectId: 'acme-prod',
      storageApiEndpoint: `http://127.0.0.1:${port}`,
      compute: { host: '127.0.0.1', port, protocol: 'http', apiKey: 'test-key' },
    },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
