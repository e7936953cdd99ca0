// Paths and helpers shared by the benchmarks.
import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root, found from this file's compiled location (dist/bench/). */
export const repositoryRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** The shared MIML scenes data and MobileNetV2 backbone beside the repository. */
export const sharedData = resolve(repositoryRoot, '../shared/data/miml-scenes');
export const sharedBackbone = resolve(repositoryRoot, '../shared/models/mobilenet_v2_1.0_224_imagenet.onnx');

/** Folder the results files are written to. */
export const resultsDir = join(repositoryRoot, 'bench', 'results');

/** Runs `work` and returns its wall time in seconds. */
export async function timeSeconds(work: () => Promise<unknown> | unknown): Promise<number> {
  const started = performance.now();
  await work();
  return (performance.now() - started) / 1000;
}

/** Returns the resident set size of this process in MiB. */
export function residentMiB(): number {
  return process.memoryUsage().rss / 2 ** 20;
}

export async function ensureResultsDir(): Promise<void> {
  await mkdir(resultsDir, { recursive: true });
}
