// The seam between where rules come from (a file, Redis) and the sessions that evaluate them.
import type { EventEmitter } from 'node:events';
import type { CompiledPolicySet } from '../policy/compile.ts';

export interface RuleSnapshot {
  version: string;
  compiled: CompiledPolicySet;
  policyCount: number;
  ruleCount: number;
  loadedAt: number; // ms since epoch, when this process loaded it
}

/** Emits 'snapshot' (RuleSnapshot) on every newly held snapshot and 'error' (Error) on a refused one. */
export interface RuleSource extends EventEmitter {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  current(): RuleSnapshot | null;
}
