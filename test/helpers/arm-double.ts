/**
 * An Azure Resource Manager answering every request the same way, as the SDK clients' `httpClient` (the
 * pipeline's transport): the SDK's own policies (retry, throttling) still run on what it answers.
 */

/** Headers as the Azure pipeline reads them (a slice of core-rest-pipeline's HttpHeaders). */
export function armHeaders(values: Record<string, string>) {
  const map = new Map(Object.entries(values).map(([k, v]) => [k.toLowerCase(), v]));
  return {
    get: (name: string) => map.get(name.toLowerCase()),
    has: (name: string) => map.has(name.toLowerCase()),
    set: (name: string, value: string | number | boolean) => void map.set(name.toLowerCase(), String(value)),
    delete: (name: string) => void map.delete(name.toLowerCase()),
    toJSON: () => Object.fromEntries(map),
    [Symbol.iterator]: () => map.entries(),
  };
}

/** ARM answering every request with `status`, an ARM error `code` and `headers`; `sent` lists the requests. */
export function armAnswering(status: number, code: string, headers: Record<string, string> = {}) {
  const sent: string[] = [];
  const httpClient = {
    sendRequest: async (request: { url: string; method: string }) => {
      sent.push(`${request.method} ${request.url}`);
      return {
        request,
        status,
        headers: armHeaders({ 'content-type': 'application/json', ...headers }),
        bodyAsText: JSON.stringify({ error: { code, message: 'try again later' } }),
      };
    },
  };
  // Typed loosely: each SDK package declares its own HttpClient type.
  return { sent, httpClient: httpClient as never };
}

/** A token credential that never expires within a test. */
export const armCredential = {
  getToken: async () => ({ token: 't', expiresOnTimestamp: Date.now() + 3_600_000 }),
};
