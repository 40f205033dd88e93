/**
 * Whether `for…in` over `o` meets any key: an own enumerable key or an inherited one (an empty tag set
 * has none; Object.prototype has one only when something made a member of it enumerable).
 */
export function hasEnumerableKey(o: object): boolean {
  for (const _ in o) return true;
  return false;
}
