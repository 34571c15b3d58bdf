// The policy loader's thread (policy-file.ts): reads, parses and validates one file per message
// and answers with the valid policies as JSON, one string per policy (strings cross threads in one
// copy; a structured clone of the objects would cost the main thread more to receive, and one
// string per policy lets the main thread parse them a few at a time).
import { readFile } from 'node:fs/promises';
import { parentPort } from 'node:worker_threads';
import { loadPolicyText } from '../policy/load.ts';
import { formatIssue } from '../policy/validate.ts';
import { versionOf, type WorkerAnswer } from './policy-file.ts';
import { errorMessage } from '../errors.ts';

parentPort?.on('message', (message: { id: number; file: string; maxBytes: number }) => {
  void answer(message).then((reply) => parentPort?.postMessage(reply));
});

async function answer({ id, file, maxBytes }: { id: number; file: string; maxBytes: number }): Promise<WorkerAnswer> {
  try {
    const bytes = await readFile(file);
    // Checked again on what was read: the file may have grown since the main thread's stat.
    if (bytes.length > maxBytes)
      return {
        id,
        ok: false,
        message: `${file}: ${bytes.length} bytes, larger than the ${maxBytes}-byte limit for a policy file`,
      };
    const text = bytes.toString('utf8');
    const { policies, issues } = loadPolicyText(text, file);
    if (issues.length > 0) return { id, ok: false, message: `${file}: ${issues.map(formatIssue).join('; ')}` };
    return { id, ok: true, version: versionOf(text), policies: policies.map((p) => JSON.stringify(p)) };
  } catch (error) {
    return { id, ok: false, message: `${file}: ${errorMessage(error)}` };
  }
}
