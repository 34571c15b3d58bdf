// Prints the mutation score of each module that `make mutate` ran, from Stryker's JSON reports,
// and exits 1 when a module with a bar is below it. Score = detected / valid, as Stryker counts
// it: killed and timed-out mutants are detected; survivors and mutants no test ran are not;
// mutants that do not compile or load are not counted.
import { existsSync, readFileSync } from 'node:fs';
import { modules } from './modules.mjs';

const ran = process.argv.slice(2);
const rows = [];
let below = 0;
for (const name of ran) {
  const file = `reports/mutation/${name}/mutation.json`;
  if (!existsSync(file)) {
    rows.push([name, 'no report', '', '', '', '', '']);
    below++;
    continue;
  }
  const report = JSON.parse(readFileSync(file, 'utf8'));
  const count = { Killed: 0, Timeout: 0, Survived: 0, NoCoverage: 0 };
  for (const f of Object.values(report.files)) {
    for (const m of f.mutants) if (m.status in count) count[m.status]++;
  }
  const valid = count.Killed + count.Timeout + count.Survived + count.NoCoverage;
  const score = valid === 0 ? 100 : ((count.Killed + count.Timeout) / valid) * 100;
  const bar = modules[name]?.bar ?? null;
  const verdict = bar === null ? 'reported' : score >= bar ? `meets ${bar} %` : `BELOW ${bar} %`;
  if (bar !== null && score < bar) below++;
  rows.push([name, `${score.toFixed(1)} %`, count.Killed, count.Timeout, count.Survived, count.NoCoverage, verdict]);
}
const head = ['module', 'score', 'killed', 'timeout', 'survived', 'no cover', 'bar'];
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
const line = (cells) => cells.map((c, i) => String(c).padEnd(widths[i])).join('  ');
console.log(line(head));
for (const row of rows) console.log(line(row));
console.log('HTML reports: reports/mutation/<module>/index.html');
process.exit(below === 0 ? 0 : 1);
