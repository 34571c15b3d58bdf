// Key layout in Redis. Everything lives under `<prefix>:v1:`; `v1` is the schema version, so a
// future layout can live beside this one during a rolling upgrade. Each module names its own keys
// under that root: the rules snapshot and the pod map in src/rules/redis-keys.ts, the limits in
// src/limits/redis-keys.ts. Keys one script or one reader must see together share a hash tag
// `{...}`, which puts them in one Cluster slot.

export const SCHEMA_VERSION = 'v1';
export const DEFAULT_PREFIX = 'socks4-fleet';

/** Prefixes come from flags and Helm values: plain names only, never a brace or a space. */
const PREFIX_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$/;

/** Returns why a prefix is unusable, or null when it is fine. */
export function checkPrefix(prefix: string): string | null {
  return PREFIX_PATTERN.test(prefix)
    ? null
    : `"${prefix}" is not a usable prefix (letters, digits, '.', '_', ':', '-'; up to 100; no braces)`;
}

export function requirePrefix(prefix: string): string {
  const problem = checkPrefix(prefix);
  if (problem !== null) throw new Error(problem);
  return prefix;
}

/** The Cluster hash tag of a key (what decides its slot), or the whole key when it has none. */
export function hashTagOf(key: string): string {
  const open = key.indexOf('{');
  if (open === -1) return key;
  const close = key.indexOf('}', open + 1);
  if (close === -1 || close === open + 1) return key;
  return key.slice(open + 1, close);
}
