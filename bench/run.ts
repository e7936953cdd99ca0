// `npm run bench`: runs every benchmark, prints the figures and writes them to bench/results/.
import { writeFile } from 'node:fs/promises';
import { availableParallelism, cpus } from 'node:os';
import { join } from 'node:path';
import { ensureResultsDir, resultsDir } from './common.js';
import { benchFrozen } from './frozen.js';

const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  node: process.version,
  cpu: cpus()[0]?.model ?? 'unknown',
  logicalCores: availableParallelism(),
};

process.stdout.write('frozen backbone (MobileNetV2, shared MIML train split):\n');
const frozen = await benchFrozen();
results.frozen = frozen;
for (const [name, value] of Object.entries(frozen)) {
  process.stdout.write(`  ${name}: ${value.toFixed(1)}\n`);
}

await ensureResultsDir();
const path = join(resultsDir, 'latest.json');
await writeFile(path, `${JSON.stringify(results, null, 2)}\n`);
process.stdout.write(`results written to ${path}\n`);
