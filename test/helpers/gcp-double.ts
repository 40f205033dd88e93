/**
 * A local HTTP double of the Google JSON API paths the actions' clients call, checked against what
 * @google-cloud/storage 7 and @google-cloud/compute 6 (REST fallback) send:
 * - Cloud Storage: `GET /storage/v1/b/{bucket}` (getMetadata), `PATCH /storage/v1/b/{bucket}` (setMetadata,
 *   merged like the API's patch semantics), `GET /storage/v1/b/{bucket}/iam?optionsRequestedPolicyVersion=3`
 *   (iam.getPolicy) and `PUT /storage/v1/b/{bucket}/iam` (iam.setPolicy, refused with 412 on a stale etag).
 * - Compute: `GET|PATCH /compute/v1/projects/{p}/global/firewalls/{f}`; a patch answers with a global
 *   operation, and `POST /compute/v1/projects/{p}/global/operations/{op}/wait` reports it.
 * It keeps state, records every request (with its query), and can answer one request with an injected
 * status (403, 404, 429 …) in Google's error body shape.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { z } from 'zod';
import type { CloudClientOptions } from '../../shared/actions/clients.js';

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  body: unknown;
}

const BindingSchema = z.looseObject({
  role: z.string(),
  members: z.array(z.string()),
  condition: z.looseObject({ title: z.string(), expression: z.string() }).optional(),
});
type Binding = z.infer<typeof BindingSchema>;
/** What `iam.setPolicy` PUTs (the client adds `resourceId`). */
const PolicyBodySchema = z.looseObject({
  bindings: z.array(BindingSchema).default([]),
  version: z.number().optional(),
  etag: z.string().optional(),
});
const JsonObjectSchema = z.record(z.string(), z.unknown());

export interface DoubleBucket {
  iam: { bindings: Binding[]; etag: string; version: number };
  metadata: Record<string, unknown>;
}

export interface InjectedFailure {
  /** Only requests with this method (default: any). */
  method?: string;
  reason?: string;
  /** Sent as a Retry-After header (seconds). */
  retryAfter?: number;
}

export interface GcpDouble {
  buckets: Map<string, DoubleBucket>;
  firewalls: Map<string, Record<string, unknown>>;
  requests: RecordedRequest[];
  /** Answers the next request whose path includes `pathIncludes` (and method, if given) with `status`, once. */
  failNext(pathIncludes: string, status: number, options?: InjectedFailure): void;
  /** Firewall patches answer with a RUNNING operation that `wait` reports DONE after this many waits (default 0). */
  setOperationWaits(n: number): void;
  /** The next firewall patch's operation ends DONE with this error (compute reports refusals this way). */
  failNextOperation(httpStatus: number, code: string, message: string): void;
  /** `wait` requests are accepted and never answered (a hung backend) while on (default off). */
  hangOperationWaits(on: boolean): void;
  options: NonNullable<CloudClientOptions['gcp']>;
  stop(): Promise<void>;
}

const readBody = (req: IncomingMessage) =>
  new Promise<unknown>((resolve, reject) => {
    let data = '';
    req.on('data', (c) => {
      data += c;
    });
    req.on('end', () => {
      try {
        resolve(data ? JSON.parse(data) : undefined);
      } catch (e) {
        reject(e);
      }
    });
  });

/** JSON merge as the GCS patch applies it: nested objects merge, other values replace. */
function merge(into: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...into };
  for (const [k, v] of Object.entries(patch)) {
    const current = JsonObjectSchema.safeParse(out[k]);
    const next = JsonObjectSchema.safeParse(v);
    out[k] = current.success && next.success && !Array.isArray(v) ? merge(current.data, next.data) : v;
  }
  return out;
}

export async function startGcpDouble(): Promise<GcpDouble> {
  const buckets: GcpDouble['buckets'] = new Map();
  const firewalls: GcpDouble['firewalls'] = new Map();
  const requests: RecordedRequest[] = [];
  const failures: Array<InjectedFailure & { path: string; status: number }> = [];
  const operations = new Map<
    string,
    { waitsLeft: number; error?: { status: number; code: string; message: string } }
  >();
  let operationWaits = 0;
  let nextOperationError: { status: number; code: string; message: string } | undefined;
  let waitsHang = false;
  let etag = 1;
  let op = 0;

  const operationBody = (name: string) => {
    const o = operations.get(name);
    const done = !o || o.waitsLeft <= 0;
    return {
      kind: 'compute#operation',
      id: name.replace(/\D/g, '') || '0',
      name,
      operationType: 'patch',
      status: done ? 'DONE' : 'RUNNING',
      progress: done ? 100 : 0,
      ...(done && o?.error
        ? {
            httpErrorStatusCode: o.error.status,
            httpErrorMessage: o.error.message,
            error: { errors: [{ code: o.error.code, message: o.error.message }] },
          }
        : {}),
    };
  };

  const server: Server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const method = req.method ?? 'GET';
    const body = await readBody(req);
    requests.push({ method, path: url.pathname, query: Object.fromEntries(url.searchParams), body });
    const send = (status: number, json: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(json));
    };
    const error = (status: number, message: string, reason: string, headers: Record<string, string> = {}) =>
      send(status, { error: { code: status, message, errors: [{ message, domain: 'global', reason }] } }, headers);

    const fail = failures.findIndex((f) => url.pathname.includes(f.path) && (!f.method || f.method === method));
    if (fail >= 0) {
      const [f] = failures.splice(fail, 1);
      if (f) {
        return error(f.status, f.reason ?? `injected ${f.status}`, f.reason ?? 'injected', {
          ...(f.retryAfter !== undefined ? { 'retry-after': String(f.retryAfter) } : {}),
        });
      }
    }

    const gcs = /^\/storage\/v1\/b\/([^/]+)(\/iam)?$/.exec(url.pathname);
    if (gcs?.[1]) {
      const name = gcs[1];
      const b = buckets.get(name);
      if (!b) return error(404, 'The specified bucket does not exist.', 'notFound');
      if (gcs[2]) {
        if (method === 'PUT') {
          const next = PolicyBodySchema.parse(body);
          // The API refuses a policy read before someone else's write (read-modify-write with the etag).
          if (next.etag && next.etag !== b.iam.etag) return error(412, 'Precondition Failed', 'conditionNotMet');
          b.iam = { bindings: next.bindings, version: next.version ?? 1, etag: `BwE${++etag}` };
        }
        return send(200, { kind: 'storage#policy', resourceId: `projects/_/buckets/${name}`, ...b.iam });
      }
      if (method === 'PATCH') {
        b.metadata = merge(b.metadata, JsonObjectSchema.parse(body));
        b.metadata.metageneration = String(Number(b.metadata.metageneration ?? 1) + 1);
      }
      return send(200, { kind: 'storage#bucket', name, id: name, ...b.metadata });
    }

    const fw = /^\/compute\/v1\/projects\/([^/]+)\/global\/firewalls\/([^/]+)$/.exec(url.pathname);
    if (fw?.[2]) {
      const rule = firewalls.get(fw[2]);
      if (!rule)
        return error(404, `The resource 'projects/${fw[1]}/global/firewalls/${fw[2]}' was not found`, 'notFound');
      if (method === 'PATCH') {
        const name = `operation-${++op}`;
        operations.set(name, {
          waitsLeft: operationWaits,
          ...(nextOperationError ? { error: nextOperationError } : {}),
        });
        // A refused change leaves the rule as it was.
        if (!nextOperationError) firewalls.set(fw[2], { ...rule, ...JsonObjectSchema.parse(body) });
        nextOperationError = undefined;
        return send(200, operationBody(name));
      }
      return send(200, { kind: 'compute#firewall', ...rule });
    }

    const opm = /^\/compute\/v1\/projects\/([^/]+)\/global\/operations\/([^/]+?)(\/wait)?$/.exec(url.pathname);
    if (opm?.[2]) {
      const o = operations.get(opm[2]);
      if (!o) return error(404, `The resource 'operations/${opm[2]}' was not found`, 'notFound');
      if (opm[3] && waitsHang) return;
      if (opm[3]) o.waitsLeft -= 1;
      return send(200, operationBody(opm[2]));
    }
    error(404, `no route ${method} ${url.pathname}`, 'notFound');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    buckets,
    firewalls,
    requests,
    failNext: (path, status, options = {}) => failures.push({ path, status, ...options }),
    setOperationWaits: (n) => {
      operationWaits = n;
    },
    failNextOperation: (status, code, message) => {
      nextOperationError = { status, code, message };
    },
    hangOperationWaits: (on) => {
      waitsHang = on;
    },
    options: {
      projectId: 'acme-prod',
      storageApiEndpoint: `http://127.0.0.1:${port}`,
      compute: { host: '127.0.0.1', port, protocol: 'http', apiKey: 'test-key' },
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Requests left unanswered (hangOperationWaits) would hold the close.
        server.closeAllConnections();
      }),
  };
}
