// Prints the mutation score of every module in mutation/modules.mjs, met or missed against its
// bar, and exits 1 when a module run now is below it. Score = detected / valid, as Stryker counts
// it: killed and timed-out mutants are detected; survivors and mutants no test ran are not;
// mutants that do not compile or load are not counted.
// Modules run now (the arguments) are read from Stryker's JSON report and recorded in
// mutation/scores.json (committed, so a checkout knows the last measured scores); the others are
// printed from that record, marked with the date they were measured.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { modules } from './modules.mjs';

const RECORD = 'mutation/scores.json';
const ran = new Set(process.argv.slice(2));
const record = existsSync(RECORD) ? JSON.parse(readFileSync(RECORD, 'utf8')) : {};

for (const name of ran) {
  const file = `reports/mutation/${name}/mutation.json`;
  if (!existsSync(file)) continue;
  const report = JSON.parse(readFileSync(file, 'utf8'));
  const count = { Killed: 0, Timeout: 0, Survived: 0, NoCoverage: 0 };
  for (const f of Object.values(report.files)) {
    for (const m of f.mutants) if (m.status in count) count[m.status]++;
  }
  const valid = count.Killed + count.Timeout + count.Survived + count.NoCoverage;
  const wallFile = `reports/mutation/${name}/wall-seconds`;
  record[name] = {
    score: valid === 0 ? 100 : Math.round(((count.Killed + count.Timeout) / valid) * 1000) / 10,
    killed: count.Killed,
    timeout: count.Timeout,
    survived: count.Survived,
    noCoverage: count.NoCoverage,
    wallSeconds: existsSync(wallFile) ? Number(readFileSync(wallFile, 'utf8')) : null,
    measured: new Date().toISOString().slice(0, 10),
    // A run narrowed by MUTATE_FILES scores those files only: the table says so.
    ...(process.env.MUTATE_FILES ? { files: process.env.MUTATE_FILES } : {}),
  };
}
if (ran.size > 0) writeFileSync(RECORD, `${JSON.stringify(record, null, 2)}\n`);

const rows = [];
let below = 0;
for (const [name, mod] of Object.entries(modules)) {
  const r = record[name];
  const when = (ran.has(name) ? 'now' : r ? `recorded ${r.measured}` : '') + (r?.files ? ` (only ${r.files})` : '');
  if (r === undefined || (ran.has(name) && !existsSync(`reports/mutation/${name}/mutation.json`))) {
    rows.push([
      name,
      ran.has(name) ? 'no report' : 'not run',
      '',
      '',
      '',
      '',
      '',
      ran.has(name) && mod.bar !== null ? `missed ${mod.bar} %` : 'not measured',
      when,
    ]);
    if (ran.has(name)) below++;
    continue;
  }
  const verdict = mod.bar === null ? 'no bar' : r.score >= mod.bar ? `met ${mod.bar} %` : `missed ${mod.bar} %`;
  if (ran.has(name) && mod.bar !== null && r.score < mod.bar) below++;
  const wall = r.wallSeconds === null ? '' : `${Math.round(r.wallSeconds / 60)} min`;
  rows.push([
    name,
    `${r.score.toFixed(1)} %`,
    r.killed ?? '',
    r.timeout ?? '',
    r.survived ?? '',
    r.noCoverage ?? '',
    wall,
    verdict,
    when,
  ]);
}
const head = ['module', 'score', 'killed', 'timeout', 'survived', 'no cover', 'wall', 'bar', 'measured'];
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
const line = (cells) =>
  cells
    .map((c, i) => String(c).padEnd(widths[i]))
    .join('  ')
    .trimEnd();
console.log(line(head));
for (const row of rows) console.log(line(row));
console.log('Survivors, killed or explained: mutation/SURVIVORS.md. HTML: reports/mutation/<module>/index.html');
process.exit(below === 0 ? 0 : 1);
