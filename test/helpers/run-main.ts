// The CLI in this process: `main(argv)` with its output captured, for cases that need no child
// process (usage errors, help, validation). Tests that need a real process use spawn.ts.
import type { CliIO } from '../../src/cli/args.ts';
import { main } from '../../src/cli/main.ts';

export async function runMain(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIO = {
    stdout: (t) => {
      out += t;
    },
    stderr: (t) => {
      err += t;
    },
  };
  const code = await main(argv, io);
  return { code, out, err };
}
