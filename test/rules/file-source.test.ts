// The file source against the shared rule-source contract: rules come from a real file in a
// temporary directory that the source watches.
import { mkdtempSync, rmSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FileRuleSource } from '../../src/rules/file-source.ts';
import { runRuleSourceContract } from './rule-source-contract.ts';

runRuleSourceContract('file', async (initial) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'socks4-rules-'));
  const file = path.join(dir, 'policy.yaml');
  if (initial !== null) await writeFile(file, initial);
  const source = new FileRuleSource(file, { debounceMs: 10 });
  // Published whole, as editors and ConfigMap updates do (write beside, then rename): a reload
  // that read a half-written file would see an empty set, which the source rightly refuses.
  let n = 0;
  const others: FileRuleSource[] = [];
  const replace = async (text: string): Promise<void> => {
    const next = path.join(dir, `.policy.yaml.${n++}`);
    await writeFile(next, text);
    await rename(next, file);
  };
  return {
    source,
    publish: (yaml) => replace(yaml),
    publishBroken: () =>
      replace(
        'apiVersion: socks4-fleet.io/v1alpha1\nkind: Socks4Policy\nspec: {rules: [{name: Bad, action: Maybe}]}\n',
      ),
    settle: () => source.reload(),
    another: () => {
      const other = new FileRuleSource(file, { debounceMs: 10 });
      others.push(other);
      return other;
    },
    async cleanup() {
      for (const other of others) await other.stop();
      await source.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
