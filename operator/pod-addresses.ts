// Which namespace each pod address belongs to, from the Pods the operator watches. Pure: the pod
// informer feeds pods in, the publisher (operator/pod-publisher.ts) asks which addresses changed
// and what each maps to now.
//
// An address counts only while some pod holds it in status.podIPs (status.podIP on old API
// servers). hostNetwork pods are left out: their address is the node's, shared by every such pod
// of every namespace. Pods that finished (Succeeded, Failed) no longer hold theirs. When pods of
// two namespaces claim one address (a deleted pod's address handed out again before the delete
// arrived), the address maps to no namespace until one of them lets go: only cluster policies
// then govern it, never the wrong namespace's.
import { formatIpv4, NOT_IPV4, parseIpv4 } from '../src/policy/ip.ts';
import { namespacedKey } from '../src/policy/types.ts';

export interface ObservedPod {
  readonly metadata?: { readonly name?: string; readonly namespace?: string };
  readonly spec?: { readonly hostNetwork?: boolean };
  readonly status?: {
    readonly phase?: string;
    readonly podIP?: string;
    readonly podIPs?: readonly { readonly ip?: string }[];
  };
}

export function podKey(pod: ObservedPod): string {
  return namespacedKey(pod.metadata?.namespace ?? '', pod.metadata?.name ?? '');
}

/** One spelling per address: dotted IPv4 as the proxy's sockets report it, IPv6 in lower case. */
export function canonicalAddress(text: string): string | null {
  const v4 = parseIpv4(text);
  if (v4 !== NOT_IPV4) return formatIpv4(v4);
  return /^[0-9a-f:]+$/i.test(text) && text.includes(':') ? text.toLowerCase() : null;
}

/** The addresses a pod holds now (none for hostNetwork or finished pods). */
export function podAddresses(pod: ObservedPod): string[] {
  if (pod.spec?.hostNetwork === true) return [];
  const phase = pod.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed') return [];
  const listed = pod.status?.podIPs?.map((p) => p.ip ?? '') ?? [];
  const raw = listed.length > 0 ? listed : pod.status?.podIP === undefined ? [] : [pod.status.podIP];
  const out = new Set<string>();
  for (const text of raw) {
    const address = canonicalAddress(text);
    if (address !== null) out.add(address);
  }
  return [...out];
}

export class PodAddressIndex {
  /** pod key → its namespace and addresses, as last seen. */
  readonly #pods = new Map<string, { namespace: string; addresses: readonly string[] }>();
  /** address → the keys of the pods holding it. */
  readonly #holders = new Map<string, Set<string>>();

  /** Records a pod as it is now (null: gone); returns the addresses whose holders changed. */
  update(key: string, pod: ObservedPod | null): string[] {
    const before = this.#pods.get(key);
    const namespace = pod?.metadata?.namespace ?? '';
    const addresses = pod === null || namespace === '' ? [] : podAddresses(pod);
    const touched = new Set<string>([...(before?.addresses ?? []), ...addresses]);
    for (const address of before?.addresses ?? []) {
      const holders = this.#holders.get(address);
      holders?.delete(key);
      if (holders?.size === 0) this.#holders.delete(address);
    }
    if (addresses.length === 0) this.#pods.delete(key);
    else this.#pods.set(key, { namespace, addresses });
    for (const address of addresses) {
      let holders = this.#holders.get(address);
      if (holders === undefined) this.#holders.set(address, (holders = new Set()));
      holders.add(key);
    }
    // A namespace change without an address change still changes what those addresses map to.
    return [...touched];
  }

  /** The namespace an address belongs to, or null (no pod holds it, or pods of two namespaces do). */
  namespaceOf(address: string): string | null {
    const holders = this.#holders.get(address);
    if (holders === undefined) return null;
    let found: string | null = null;
    for (const key of holders) {
      const ns = this.#pods.get(key)?.namespace ?? null;
      if (found !== null && ns !== found) return null;
      found = ns;
    }
    return found;
  }

  /** Every attributed address → namespace: what the published hash should hold. */
  entries(): Map<string, string> {
    const out = new Map<string, string>();
    for (const address of this.#holders.keys()) {
      const ns = this.namespaceOf(address);
      if (ns !== null) out.set(address, ns);
    }
    return out;
  }
}
