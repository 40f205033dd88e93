/**
 * Live GCP labels. SCC notifications carry no labels; the project's labels (Resource Manager v3
 * `projects.get`, permission `resourcemanager.projects.get`) are read for every resource, and a
 * resource-level reader (e.g. a bucket's labels from Cloud Storage) may be injected: its labels win.
 *
 * @see https://cloud.google.com/resource-manager/reference/rest/v3/projects/get
 */
import { AdapterError, type ErrorKind } from '../../core/errors.js';
import type { OwnerLookup, ResourceRef } from '../../core/ports.js';

/** The one Resource Manager call made; a ProjectsClient satisfies it (checked in the adapter's test). */
export interface GcpProjectsClient {
  getProject(request: { name: string }): Promise<[{ labels?: Record<string, string> | null }, ...unknown[]]>;
}

/** Optional labels of the resource itself, by full resource name; undefined when it has none to say. */
export type GcpResourceLabelsReader = (fullResourceName: string) => Promise<Record<string, string> | undefined>;

// gRPC status codes (google.rpc.Code).
const GRPC_KINDS: Record<number, ErrorKind> = {
  3: 'invalid',
  4: 'transient',
  5: 'gone',
  7: 'denied',
  8: 'throttled',
  14: 'transient',
  16: 'denied',
};

export function gcpAdapterError(e: unknown, what: string): AdapterError {
  const code = e && typeof e === 'object' && 'code' in e && typeof e.code === 'number' ? e.code : -1;
  return new AdapterError(GRPC_KINDS[code] ?? 'transient', `${what}: gRPC ${code}`, { cause: e });
}

/**
 * @example new GcpLabelsLookup(new ProjectsClient())
 */
export class GcpLabelsLookup implements OwnerLookup {
  constructor(
    private readonly projects: GcpProjectsClient,
    private readonly resourceLabels?: GcpResourceLabelsReader,
  ) {}

  async tagsFor(r: ResourceRef): Promise<Record<string, string>> {
    if (r.provider !== 'gcp')
      throw new AdapterError('invalid', `GcpLabelsLookup cannot look up ${r.provider} resources`);
    // A project id or number both name the project in v3 (`projects/{id-or-number}`).
    const name = `projects/${r.account}`;
    let projectLabels: Record<string, string> = {};
    try {
      const [project] = await this.projects.getProject({ name });
      projectLabels = { ...project.labels };
    } catch (e) {
      throw gcpAdapterError(e, `projects.get ${name}`);
    }
    let own: Record<string, string> | undefined;
    try {
      own = await this.resourceLabels?.(r.id);
    } catch (e) {
      throw gcpAdapterError(e, `labels of ${r.id}`);
    }
    return { ...projectLabels, ...own };
  }
}
