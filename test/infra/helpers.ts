/** Shared by the infra tests: an EventBridge pattern matcher and the repository root. */
import { join } from 'node:path';

export const root = join(import.meta.dirname, '../..');

/**
 * EventBridge content matching, for the pattern features serverless.yml uses: arrays of exact values and
 * `{ prefix }` objects, nested objects for nested fields.
 * @see https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern-operators.html
 */
export function matchesPattern(pattern: unknown, event: unknown): boolean {
  if (typeof pattern !== 'object' || pattern === null || Array.isArray(pattern)) return false;
  for (const [key, expected] of Object.entries(pattern)) {
    const actual: unknown = typeof event === 'object' && event !== null ? Reflect.get(event, key) : undefined;
    if (Array.isArray(expected)) {
      const values = Array.isArray(actual) ? actual : [actual];
      const ok = expected.some((alt: unknown) =>
        values.some((v) =>
          typeof alt === 'object' && alt !== null && 'prefix' in alt
            ? typeof v === 'string' && typeof alt.prefix === 'string' && v.startsWith(alt.prefix)
            : v === alt,
        ),
      );
      if (!ok) return false;
    } else if (!matchesPattern(expected, actual)) {
      return false;
    }
  }
  return true;
}
