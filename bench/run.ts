// `npm run bench`: runs every benchmark, prints the figures and writes them to bench/results/.
import { writeFile } from 'node:fs/promises';
import { availableParallelism, cpus } from 'node:os';
import { join } from 'node:path';
import { ensureResultsDir, resultsDir } from './common.js';
import { benchFinetune } from './finetune.js';
import { benchFrozen } from './frozen.js';
import { benchServe } from './serve.js';

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

process.stdout.write('fine-tuning step, batch 32 (forward + backward + AdamW):\n');
const finetune = await benchFinetune(Number(frozen.threads));
results.finetune = finetune;
for (const step of finetune.steps) {
  const versusAll = step.speedupOverTorchAllLayers === undefined ? '' : ` (${step.speedupOverTorchAllLayers.toFixed(2)}x PyTorch with all layers)`;
  const torch = step.torchMsPerImage === undefined ? 'PyTorch not installed' : `PyTorch ${step.torchMsPerImage.toFixed(1)} ms/image, multitag ${step.speedup!.toFixed(2)}x as fast${versusAll}`;
  process.stdout.write(`  ${step.configuration}: ${step.multitagMsPerImage.toFixed(1)} ms/image (${(1000 / step.multitagMsPerImage).toFixed(1)} images/s), peak RSS ${step.multitagPeakRssMiB} MiB; ${torch}\n`);
}

process.stdout.write('HTTP /predict load on loopback:\n');
const serve = await benchServe();
results.serve = serve;
process.stdout.write(`${JSON.stringify(serve, null, 2)}\n`);

await ensureResultsDir();
const path = join(resultsDir, 'latest.json');
await writeFile(path, `${JSON.stringify(results, null, 2)}\n`);
process.stdout.write(`results written to ${path}\n`);
