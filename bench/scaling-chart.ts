// Draws the fleet's scaling curve (bench/lib/scaling-chart.ts) from saved runs:
//
//   scripts/node bench/admission.ts --json > admission.json
//   scripts/node bench/fleet-scaling.ts --json > pushes.json
//   scripts/node bench/scaling-chart.ts --admission admission.json [--pushes pushes.json] [--out bench/scaling.svg]
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { AdmissionRun } from './admission.ts';
import type { FleetScalingReport } from './fleet-scaling.ts';
import { renderScalingChart } from './lib/scaling-chart.ts';

const { values } = parseArgs({
  options: {
    admission: { type: 'string' },
    pushes: { type: 'string' },
    out: { type: 'string', default: 'bench/scaling.svg' },
  },
});
if (values.admission === undefined) {
  process.stderr.write('--admission FILE is required: the --json output of bench/admission.ts\n');
  process.exit(2);
}
const lastJsonLine = (file: string): unknown => JSON.parse(readFileSync(file, 'utf8').trim().split('\n').at(-1)!);
const admission = (lastJsonLine(values.admission) as { runs: AdmissionRun[] }).runs;
const pushes = values.pushes === undefined ? null : (lastJsonLine(values.pushes) as FleetScalingReport);
writeFileSync(
  values.out,
  renderScalingChart(admission, pushes, new Date().toISOString().slice(0, 16).replace('T', ' ')),
);
process.stderr.write(`wrote ${values.out}\n`);
