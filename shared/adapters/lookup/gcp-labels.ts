/**
 * Live GCP labels. SCC notifications carry no labels; the project's labels (Resource Manager v3
 * `projects.get`, permission `resourcemanager.projects.get`) are read for every resource, and a
 * resource-level reader (e.g. a bucket's labels from Cloud Storage) may be injected: its labels win.
 * The answer keeps the two apart (`inherited`: the project's labels the resource does not override): a
 * project-wide `owner` label says less about one bucket than a registry rule naming that bucket does.
 * A project's labels are read once per `projectTtlMs` (default 15 minutes) and shared by every resource
 * of the project, concurrent asks included: a batch of 1,000 findings in one project is one `projects.get`.
 *
 * @see https://cloud.google.com/resource-manager/reference/rest/v3/projects/get
 */
import { GCP_CALL_OPTIONS } from '../../actions/retry.js';
import { AdapterError, type ErrorKind, kindOfHttpStatus } from '../../core/errors.js';
import {
  type Clock,
  type LookupOutcome,
  type LookupTags,
  type OwnerLookup,
  type ResourceRef,
  settledLookups,
  systemClock,
} from '../../core/ports.js';

/** The one Resource Manager call made; a ProjectsClient satisfies it (checked in the adapter's test). */
export interface GcpProjectsClient {
  getProject(
    request: { name: string },
    options?: { timeout?: number; retry?: null },
  ): Promise<[{ labels?: Record<string, string> | null }, ...unknown[]]>;
}

/** Optional labels of the resource itself, by full resource name; undefined when it has none to say. */
export type GcpResourceLabelsReader = (fullResourceName: string) => Promise<Record<string, string> | undefined>;

/** The bucket a Cloud Storage full resource name names (`//storage.googleapis.com/NAME`), else undefined. */
export function gcsBucketOf(fullResourceName: string): string | undefined {
  const m = /^\/\/storage\.googleapis\.com\/(?:projects\/_\/buckets\/)?([a-z0-9][a-z0-9._-]{1,220}[a-z0-9])$/.exec(
    fullResourceName,
  );
  return m?.[1];
}

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

/**
 * HTTP statuses, as the JSON APIs (Cloud Storage) report them in `code` (gRPC codes are 0–16): a 4xx is
 * transient but for those named, as this adapter has read them from the start; 5xx are, as everywhere.
 */
const HTTP_KINDS = {
  '4xx': 'transient',
  400: 'invalid',
  401: 'denied',
  403: 'denied',
  404: 'gone',
  429: 'throttled',
} as const;

export function gcpAdapterError(e: unknown, what: string): AdapterError {
  const code = e && typeof e === 'object' && 'code' in e && typeof e.code === 'number' ? e.code : -1;
  if (code >= 100) return new AdapterError(kindOfHttpStatus(code, HTTP_KINDS), `${what}: HTTP ${code}`, { cause: e });
  return new AdapterError(GRPC_KINDS[code] ?? 'transient', `${what}: gRPC ${code}`, { cause: e });
}

/**
 * @example new GcpLabelsLookup(new ProjectsClient())
 */
export class GcpLabelsLookup implements OwnerLookup {
  private readonly projectLabels = new Map<string, { labels: Promise<Record<string, string>>; at: number }>();
  private readonly ttlMs: number;
  private readonly clock: Clock;

  constructor(
    private readonly projects: GcpProjectsClient,
    private readonly resourceLabels?: GcpResourceLabelsReader,
    options: { projectTtlMs?: number; clock?: Clock } = {},
  ) {
    this.ttlMs = options.projectTtlMs ?? 15 * 60_000;
    this.clock = options.clock ?? systemClock;
  }

  handles(provider: ResourceRef['provider']): boolean {
    return provider === 'gcp';
  }

  /** The project's labels, read at most once per ttl; a failed read is forgotten (the next ask retries). */
  private labelsOf(name: string): Promise<Record<string, string>> {
    const now = this.clock.now().getTime();
    const kept = this.projectLabels.get(name);
    if (kept && now - kept.at < this.ttlMs) return kept.labels;
    // One try with a deadline (GCP_CALL_OPTIONS): the client's own settings retried UNAVAILABLE for up to 60 s,
    // the ingest function's whole time; a failed read is the caller's to retry.
    const labels = this.projects.getProject({ name }, GCP_CALL_OPTIONS).then(
      ([project]) => ({ ...project.labels }),
      (e: unknown) => {
        if (this.projectLabels.get(name)?.labels === labels) this.projectLabels.delete(name);
        throw gcpAdapterError(e, `projects.get ${name}`);
      },
    );
    this.projectLabels.set(name, { labels, at: now });
    return labels;
  }

  /** The labels that apply to `r` (its own over its project's), and which of them are the project's. */
  async labelsFor(r: ResourceRef): Promise<Required<Omit<LookupTags, 'inheritedFrom'>>> {
    if (r.provider !== 'gcp')
      throw new AdapterError('invalid', `GcpLabelsLookup cannot look up ${r.provider} resources`);
    // A project id or number both name the project in v3 (`projects/{id-or-number}`).
    const projectLabels = await this.labelsOf(`projects/${r.account}`);
    let own: Record<string, string> | undefined;
    try {
      own = await this.resourceLabels?.(r.id);
    } catch (e) {
      throw gcpAdapterError(e, `labels of ${r.id}`);
    }
    const inherited: Record<string, string> = {};
    for (const [k, v] of Object.entries(projectLabels)) if (!own || !Object.hasOwn(own, k)) inherited[k] = v;
    return { tags: { ...projectLabels, ...own }, inherited };
  }

  async tagsFor(r: ResourceRef): Promise<Record<string, string>> {
    return (await this.labelsFor(r)).tags;
  }

  /** Each resource's labels with its project's kept apart (`inherited`); the projects read once each. */
  tagsForMany(refs: readonly ResourceRef[]): Promise<LookupOutcome[]> {
    return settledLookups(refs, (r) => this.labelsFor(r));
  }
}
