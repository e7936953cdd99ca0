// Builds small data folders from the shared MIML scene data set for training tests: subset label CSVs
// in a temporary folder, with `train` and `test` as symbolic links to the shared image folders.
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, found from this file's location in dist/test/train/. */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const mimlDir = path.resolve(repoRoot, '../shared/data/miml-scenes');
export const sharedBackbone = path.resolve(repoRoot, '../shared/models/mobilenet_v2_1.0_224_imagenet.onnx');

/** Rows kept from each split: every `trainEvery`-th training row and every `testEvery`-th test row. */
export interface SubsetSpec {
  trainEvery: number;
  testEvery: number;
}

/**
 * Writes train_label.csv and test_label.csv with every n-th row of the shared CSVs into `dir` and links
 * the image folders. The shared CSVs are grouped by label, so striding keeps every label in the subset.
 */
export async function makeMimlSubset(dir: string, spec: SubsetSpec): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [split, every] of [['train', spec.trainEvery], ['test', spec.testEvery]] as const) {
    const lines = (await readFile(path.join(mimlDir, `${split}_label.csv`), 'utf8')).trimEnd().split(/\r?\n/);
    const kept = [lines[0], ...lines.slice(1).filter((_, index) => index % every === 0)];
    await writeFile(path.join(dir, `${split}_label.csv`), `${kept.join('\n')}\n`);
    await symlink(path.join(mimlDir, split), path.join(dir, split), 'dir');
  }
}

/** Reads a label CSV as its label names, file names and row-major 0/1 targets. */
export async function readLabelMatrix(csvPath: string): Promise<{ labels: string[]; files: string[]; targets: Uint8Array }> {
  const lines = (await readFile(csvPath, 'utf8')).trimEnd().split(/\r?\n/);
  const labels = lines[0].split(',').slice(1);
  const rows = lines.slice(1).map((line) => line.split(','));
  const targets = new Uint8Array(rows.length * labels.length);
  rows.forEach((cells, row) => {
    labels.forEach((_, label) => {
      targets[row * labels.length + label] = Number(cells[label + 1]);
    });
  });
  return { labels, files: rows.map((cells) => cells[0]), targets };
}
