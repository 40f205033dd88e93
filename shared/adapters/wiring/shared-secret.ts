/** The one check of a shared secret presented in a header (the spokes' HTTP entries). */
import { createHash, timingSafeEqual } from 'node:crypto';

/** Shortest configured secret accepted: a shorter one fails closed (the infra generates 32+ characters). */
export const MIN_SHARED_SECRET_LENGTH = 16;

/**
 * Constant-time check of the presented header against the configured secret (equal-length digests).
 * Fails closed on a missing or short secret, and on an unresolved Key Vault reference (App Service leaves
 * the literal `@Microsoft.KeyVault(…)` text in place when it cannot resolve it, and that text is public:
 * it is in the app settings and the Bicep).
 *
 * @example sharedSecretMatches(request.headers.get('x-closeloop-secret'), env.CLOSELOOP_SPOKE_SECRET)
 */
export function sharedSecretMatches(presented: string | null | undefined, expected: string | undefined): boolean {
  if (!presented || !expected) return false;
  if (expected.length < MIN_SHARED_SECRET_LENGTH || expected.startsWith('@Microsoft.KeyVault(')) return false;
  const digest = (v: string) => createHash('sha256').update(v, 'utf8').digest();
  return timingSafeEqual(digest(presented), digest(expected));
}
