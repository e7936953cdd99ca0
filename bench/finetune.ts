// Fine-tuning step throughput (forward, backward, AdamW) of multitag's generated training graphs at
// batch 32, for full and partial unfreezing. Each measurement runs in a fresh process, so its peak RSS
// is its own. When PyTorch with torchvision is installed, the same step runs in PyTorch with the same
// thread count, alternating with multitag over several rounds so that both see the same machine load.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repositoryRoot, sharedBackbone } from './common.js';

const run = promisify(execFile);

/** MobileNetV2's inverted-residual blocks; torchvision's `features` has the stem, these, and a last 1x1 conv. */
const invertedResidualBlocks = 17;

/** Alternating rounds of multitag and PyTorch per configuration. */
const rounds = 5;

/** One measured configuration. Its times are medians over the rounds of each round's median step. */
export interface StepFigures {
  configuration: string;
  multitagMsPerImage: number;
  multitagPeakRssMiB: number;
  /** Each round's figure, in the order measured. */
  multitagRounds: number[];
  torchMsPerImage?: number;
  torchRounds?: number[];
  torchTrainableFraction?: number;
  /** PyTorch time divided by multitag time: above 1 means multitag is faster. */
  speedup?: number;
  /** PyTorch's time with every layer trainable divided by this configuration's multitag time. */
  speedupOverTorchAllLayers?: number;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function multitagStep(blocks: number | 'all', threads: number): Promise<{ msPerImage: number; peakRssMiB: number }> {
  const script = join(repositoryRoot, 'dist/bench/finetuneStep.js');
  const { stdout } = await run(process.execPath, [script, sharedBackbone, '--batch', '32', '--blocks', String(blocks), '--steps', '5', '--threads', String(threads)], {
    maxBuffer: 1 << 20,
  });
  const result = JSON.parse(stdout.trim().split('\n').pop()!) as { msPerImage: number; peakRssMiB: number };
  return result;
}

/** Finds a Python with torch and torchvision: python3 on the PATH, else Debian's /usr/bin/python3. */
async function findTorchPython(): Promise<string | undefined> {
  for (const candidate of ['python3', '/usr/bin/python3']) {
    try {
      await run(candidate, ['-c', 'import torch, torchvision']);
      return candidate;
    } catch {
      // Try the next candidate.
    }
  }
  return undefined;
}

async function torchStep(python: string, frozenFeatureBlocks: number, threads: number): Promise<{ msPerImage: number; trainableFraction: number }> {
  const { stdout } = await run(python, [join(repositoryRoot, 'bench/torch_step.py'), '32', String(threads), '5', String(frozenFeatureBlocks)], { maxBuffer: 1 << 20 });
  return JSON.parse(stdout.trim().split('\n').pop()!) as { msPerImage: number; trainableFraction: number };
}

/** Measures full fine-tuning and `last:N`-style partial unfreezing of 10 and 7 blocks. */
export async function benchFinetune(threads: number): Promise<{ python: string | null; steps: StepFigures[] }> {
  const python = await findTorchPython();
  const steps: StepFigures[] = [];
  for (const blocks of ['all', 10, 7] as const) {
    // torchvision's features[0] is the stem, so freezing the first k blocks freezes k + 1 children.
    const frozen = blocks === 'all' ? 0 : invertedResidualBlocks - blocks + 1;
    const multitagRounds: number[] = [];
    const torchRounds: number[] = [];
    let peakRssMiB = 0;
    let trainableFraction: number | undefined;
    for (let round = 0; round < (python ? rounds : 1); round++) {
      const multitag = await multitagStep(blocks, threads);
      multitagRounds.push(multitag.msPerImage);
      peakRssMiB = Math.max(peakRssMiB, multitag.peakRssMiB);
      if (python) {
        const torch = await torchStep(python, frozen, threads);
        torchRounds.push(torch.msPerImage);
        trainableFraction = torch.trainableFraction;
      }
    }
    const figures: StepFigures = {
      configuration: blocks === 'all' ? 'all layers' : `last ${blocks} blocks`,
      multitagMsPerImage: median(multitagRounds),
      multitagPeakRssMiB: peakRssMiB,
      multitagRounds,
    };
    if (python) {
      figures.torchMsPerImage = median(torchRounds);
      figures.torchRounds = torchRounds;
      figures.torchTrainableFraction = trainableFraction;
      figures.speedup = figures.torchMsPerImage / figures.multitagMsPerImage;
    }
    steps.push(figures);
  }

  // Partial unfreezing is also compared with full fine-tuning in PyTorch, the step it replaces.
  const torchAllLayers = steps[0].torchMsPerImage;
  if (torchAllLayers !== undefined) {
    for (const figures of steps.slice(1)) {
      figures.speedupOverTorchAllLayers = torchAllLayers / figures.multitagMsPerImage;
    }
  }
  return { python: python ?? null, steps };
}
