// Reading a policy file: the size cap, checked before a byte is parsed, and the load (YAML parse
// and validation) in a worker thread so a big reload never stalls the sessions on the main one.
//
// Why: a 10 000-rule file took 2-3 s of the main thread to parse, validate and compile, stalling
// every session; a 37 MB file needed 2.9 GB to validate. Parsing and validating are most of it
// and run in the worker; the main thread parses the worker's JSON and compiles, both in steps
// with an event-loop turn between them (runInTurns), so sessions are served during a reload.
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import type { Socks4Policy } from '../policy/types.ts';

/** Policy files larger than this are refused unread (README: "Policy file size"). */
export const MAX_POLICY_FILE_BYTES = 8 * 1024 * 1024;

export class PolicyFileError extends Error {
  override name = 'PolicyFileError';
}

/** Why `file` may not be read as a policy (over the cap), or null; the file is not opened. */
export async function policyFileSizeProblem(file: string, maxBytes = MAX_POLICY_FILE_BYTES): Promise<string | null> {
  const { size } = await stat(file);
  return size > maxBytes
    ? `${size} bytes, larger than the ${maxBytes}-byte limit for a policy file (split it into several)`
    : null;
}

/** Throws PolicyFileError naming the file when it is over the cap. */
export async function checkPolicyFileSize(file: string, maxBytes = MAX_POLICY_FILE_BYTES): Promise<void> {
  const problem = await policyFileSizeProblem(file, maxBytes);
  if (problem !== null) throw new PolicyFileError(`${file}: ${problem}`);
}

export function versionOf(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 12);
}

/** What the worker sends back: valid policies, or every issue formatted. */
export type WorkerAnswer =
  | { id: number; ok: true; version: string; policies: string[] /* JSON of each Socks4Policy */ }
  | { id: number; ok: false; message: string };

export interface LoadedPolicies {
  version: string;
  /** Each policy as JSON: parse them with parsePoliciesInSteps. */
  policies: string[];
}

/** JSON.parse of each policy, pausing (yield) every `perStep` of them; see compileInSteps. */
export function* parsePoliciesInSteps(json: readonly string[], perStep = 20): Generator<void, Socks4Policy[], void> {
  const out: Socks4Policy[] = [];
  for (const text of json) {
    out.push(JSON.parse(text) as Socks4Policy);
    if (out.length % perStep === 0) yield;
  }
  return out;
}

/** Runs a stepped computation one step per event-loop turn, so sessions run between steps. */
export async function runInTurns<T>(steps: Generator<void, T, void>): Promise<T> {
  for (;;) {
    const step = steps.next();
    if (step.done === true) return step.value;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/**
 * One long-lived worker thread that reads, parses and validates policy files; started on first
 * use and unref'd (it never keeps the process alive). A crashed worker is replaced on next use.
 */
export class PolicyLoader {
  #worker: Worker | null = null;
  #next = 0;
  readonly #waiting = new Map<number, { resolve: (a: WorkerAnswer) => void; reject: (e: Error) => void }>();

  #start(): Worker {
    if (this.#worker !== null) return this.#worker;
    const worker = new Worker(new URL('./policy-worker.ts', import.meta.url));
    worker.unref();
    worker.on('message', (answer: WorkerAnswer) => {
      this.#waiting.get(answer.id)?.resolve(answer);
      this.#waiting.delete(answer.id);
    });
    const fail = (error: Error): void => {
      if (this.#worker === worker) this.#worker = null;
      for (const { reject } of this.#waiting.values()) reject(error);
      this.#waiting.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`policy loader thread exited (${code})`)));
    this.#worker = worker;
    return worker;
  }

  /** Reads and validates `file` off the main thread; throws PolicyFileError naming every issue. */
  async load(file: string, maxBytes = MAX_POLICY_FILE_BYTES): Promise<LoadedPolicies> {
    await checkPolicyFileSize(file, maxBytes);
    const id = ++this.#next;
    const worker = this.#start();
    const answer = await new Promise<WorkerAnswer>((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      worker.postMessage({ id, file, maxBytes });
    });
    if (!answer.ok) throw new PolicyFileError(answer.message);
    return { version: answer.version, policies: answer.policies };
  }

  async close(): Promise<void> {
    const worker = this.#worker;
    this.#worker = null;
    await worker?.terminate();
  }
}
