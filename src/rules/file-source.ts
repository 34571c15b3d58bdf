// Rules from a multi-document YAML file (the embedded mode). The file is watched through its
// directory, so editors that replace the file and Kubernetes ConfigMap symlink swaps are both
// seen; a change that does not parse or validate is refused and the old rules stay in force.
// Reading, parsing and validating run in a worker thread (policy-file.ts); only the compile runs
// here, and a file over the size cap is refused unread.
import { EventEmitter } from 'node:events';
import { watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import { compileInSteps, compilePolicies } from '../policy/compile.ts';
import { loadPolicyText } from '../policy/load.ts';
import { formatIssue } from '../policy/validate.ts';
import { channels } from '../telemetry/events.ts';
import { parsePoliciesInSteps, PolicyFileError, PolicyLoader, runInTurns, versionOf } from './policy-file.ts';
import type { RuleSnapshot, RuleSource } from './types.ts';
import { asError } from '../errors.ts';

export { PolicyFileError };

/** Why an empty set is refused unless asked for: it silently refuses every request. */
export function emptySetProblem(sourceName: string, flag = '--allow-empty'): string {
  return `${sourceName}: no rules (no Socks4Policy objects), which would refuse every request; pass ${flag} if that is what you want`;
}

/**
 * Loads and compiles one policy file's text; throws PolicyFileError naming every issue. An empty
 * set is refused unless `allowEmpty`: an emptied file (a truncated write, a wrong ConfigMap key)
 * would otherwise turn the proxy into one that refuses everyone.
 */
export function snapshotFromText(
  text: string,
  sourceName: string,
  options: { allowEmpty?: boolean } = { allowEmpty: true },
): RuleSnapshot {
  const { policies, issues } = loadPolicyText(text, sourceName);
  if (issues.length > 0) {
    throw new PolicyFileError(`${sourceName}: ${issues.map(formatIssue).join('; ')}`);
  }
  if (policies.length === 0 && options.allowEmpty !== true) throw new PolicyFileError(emptySetProblem(sourceName));
  const compiled = compilePolicies(policies);
  return {
    version: versionOf(text),
    compiled,
    policyCount: policies.length,
    ruleCount: policies.reduce((n, p) => n + p.spec.rules.length, 0),
    loadedAt: Date.now(),
  };
}

export class FileRuleSource extends EventEmitter implements RuleSource {
  readonly name = 'file';
  readonly #file: string;
  readonly #debounceMs: number;
  readonly #allowEmpty: boolean;
  #snapshot: RuleSnapshot | null = null;
  #watcher: FSWatcher | null = null;
  #timer: NodeJS.Timeout | undefined;
  #loading: Promise<void> = Promise.resolve();
  readonly #loader = new PolicyLoader();

  constructor(file: string, options: { debounceMs?: number; allowEmpty?: boolean } = {}) {
    super();
    this.#file = path.resolve(file);
    this.#debounceMs = options.debounceMs ?? 100;
    this.#allowEmpty = options.allowEmpty ?? false;
  }

  current(): RuleSnapshot | null {
    return this.#snapshot;
  }

  async start(): Promise<void> {
    await this.reload();
    const base = path.basename(this.#file);
    this.#watcher = watch(path.dirname(this.#file), { persistent: false }, (_event, name) => {
      // ConfigMaps swap a `..data` symlink rather than the file itself.
      if (name !== null && name !== base && !name.startsWith('..')) return;
      clearTimeout(this.#timer);
      this.#timer = setTimeout(() => void this.reload(), this.#debounceMs);
    });
    this.#watcher.on('error', (error) => this.#refuse(error));
  }

  async stop(): Promise<void> {
    clearTimeout(this.#timer);
    this.#watcher?.close();
    this.#watcher = null;
    await this.#loading;
    await this.#loader.close();
  }

  /** Reads the file again; one load at a time, the newest wins. */
  reload(): Promise<void> {
    this.#loading = this.#loading.then(() => this.#load());
    return this.#loading;
  }

  async #load(): Promise<void> {
    let next: RuleSnapshot;
    try {
      const loaded = await this.#loader.load(this.#file);
      const version = loaded.version;
      if (version === this.#snapshot?.version) return;
      // Validated in the worker: parsing its JSON and compiling are left for this thread, a few
      // hundred rules per event-loop turn.
      const policies = await runInTurns(parsePoliciesInSteps(loaded.policies));
      if (policies.length === 0 && !this.#allowEmpty) throw new PolicyFileError(emptySetProblem(this.#file));
      const compiled = await runInTurns(compileInSteps(policies, { validated: true }));
      next = {
        version,
        compiled,
        policyCount: policies.length,
        ruleCount: policies.reduce((n, p) => n + p.spec.rules.length, 0),
        loadedAt: Date.now(),
      };
    } catch (error) {
      this.#refuse(asError(error));
      return;
    }
    this.#snapshot = next;
    if (channels.snapshotLoaded.hasSubscribers) {
      channels.snapshotLoaded.publish({
        source: this.name,
        version: next.version,
        ruleCount: next.ruleCount,
        policyCount: next.policyCount,
        loadedAt: next.loadedAt,
      });
    }
    this.emit('snapshot', next);
  }

  #refuse(error: Error): void {
    if (channels.snapshotError.hasSubscribers)
      channels.snapshotError.publish({ source: this.name, error, keeping: this.#snapshot?.version ?? null });
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }
}
