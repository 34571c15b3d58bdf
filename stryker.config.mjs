// StrykerJS for `make mutate` (scripts/mutate.sh): one module per run, chosen by MUTATE_MODULE,
// so each run mutates one folder and runs only the test files written for it. The tap runner
// starts `node <test file>` on Node 24's own type stripping (no build step), with the TAP
// reporter; with perTest coverage each mutant runs only the test files that executed it.
import { modules } from './mutation/modules.mjs';

const name = process.env.MUTATE_MODULE ?? 'protocol';
const mod = modules[name];
if (mod === undefined) throw new Error(`MUTATE_MODULE=${name}: not one of ${Object.keys(modules).join(', ')}`);

export default {
  testRunner: 'tap',
  tap: {
    testFiles: mod.tests,
    // Runs each file as `node -r <hook> --test-reporter=tap <file>`; NODE_EXTRA_CA_CERTS is unset
    // by the Makefile (parsing the CA bundle costs seconds per process on a busy machine).
    nodeArgs: ['-r', '{{hookFile}}', '--test-reporter=tap', '{{testFile}}'],
    forceBail: true,
  },
  // MUTATE_FILES=a.ts,b.ts:10-40 narrows a run to some of the module's files (Stryker's own
  // `file:line-line` ranges), e.g. to re-check the lines a new test guards.
  mutate: process.env.MUTATE_FILES ? process.env.MUTATE_FILES.split(',') : mod.mutate,
  coverageAnalysis: 'perTest',
  // The sandbox copies only what the tests read: not .tools (Node itself), bin/ or charts/; nor
  // tsconfig.json, which Stryker would rewrite through the TypeScript 5 API that TypeScript 7 lacks.
  ignorePatterns: ['/*', '!/src', '!/test', '!/package.json', '!/examples'],
  concurrency: Number(process.env.MUTATE_CONCURRENCY ?? 2),
  // A mutant is a timeout when it runs 5 s past 1.5× its dry-run time (Stryker's defaults): a
  // mutated loop bound that never ends then costs seconds, not the 15 s a wider margin did.
  // On a loaded machine (load 15 on 2 cores) mutants that cannot loop time out anyway and count
  // as detected: MUTATE_TIMEOUT_MS raises the margin for a run that must not over-count.
  timeoutMS: Number(process.env.MUTATE_TIMEOUT_MS ?? 5000),
  timeoutFactor: 1.5,
  reporters: ['clear-text', 'progress-append-only', 'html', 'json'],
  clearTextReporter: {
    allowColor: false,
    logTests: false,
    reportTests: false,
    reportScoreTable: true,
    reportMutants: true,
  },
  htmlReporter: { fileName: `reports/mutation/${name}/index.html` },
  jsonReporter: { fileName: `reports/mutation/${name}/mutation.json` },
  tempDirName: '.stryker-tmp',
  incremental: process.env.MUTATE_INCREMENTAL === '1',
  incrementalFile: `reports/mutation/${name}/incremental.json`,
  thresholds: { high: 90, low: 85, break: null },
};
