// A small data set built from the MIML scene images, copied into a temporary folder, with the labels of
// a few images changed on purpose, for the report and audit tests.
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// The compiled test runs from dist/test/report/, three levels below the repository root.
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const sharedData = path.resolve(repoRoot, '../shared/data/miml-scenes');
export const sharedBackbone = path.resolve(repoRoot, '../shared/models/mobilenet_v2_1.0_224_imagenet.onnx');
export const cliPath = path.join(repoRoot, 'dist/src/cli/main.js');

/** A label changed on purpose. */
export interface FlippedLabel {
  file: string;
  split: 'train' | 'test';
  /** The image's real label, set to 0. */
  removed: string;
  /** A label the image does not show, set to 1. */
  added: string;
}

/** The data set and the labels that were changed. */
export interface FlippedDataset {
  dataDir: string;
  labels: string[];
  trainCount: number;
  testCount: number;
  flipped: FlippedLabel[];
}

/**
 * Writes a data set of 150 MIML training images into `dir`: every sixth row of train_label.csv, with
 * every fifth chosen image in the test split. Five images with a single label get another label
 * instead (label k becomes label k + 2), like an annotator picking the wrong class.
 */
export async function writeFlippedDataset(dir: string): Promise<FlippedDataset> {
  const lines = (await readFile(path.join(sharedData, 'train_label.csv'), 'utf8')).trim().split(/\r?\n/);
  const header = lines[0];
  const labels = header.split(',').slice(1);
  const rows = lines.slice(1).map((line) => {
    const [file, ...values] = line.split(',');
    return { file, targets: values.map(Number) };
  });
  const chosen = Array.from({ length: 150 }, (_, index) => rows[index * 6]);
  const splitOf = (index: number): 'train' | 'test' => (index % 5 === 4 ? 'test' : 'train');

  const flipped: FlippedLabel[] = [];
  for (const start of [12, 44, 77, 109, 139]) {
    let index = start;
    while (chosen[index].targets.reduce((sum, value) => sum + value, 0) !== 1) {
      index += 1;
    }
    const row = chosen[index];
    const real = row.targets.indexOf(1);
    const wrong = (real + 2) % labels.length;
    row.targets = row.targets.map((_, label) => (label === wrong ? 1 : 0));
    flipped.push({ file: row.file, split: splitOf(index), removed: labels[real], added: labels[wrong] });
  }

  const csv: Record<'train' | 'test', string[]> = { train: [header], test: [header] };
  await mkdir(path.join(dir, 'train'), { recursive: true });
  await mkdir(path.join(dir, 'test'), { recursive: true });
  for (const [index, row] of chosen.entries()) {
    const split = splitOf(index);
    csv[split].push([row.file, ...row.targets].join(','));
    await copyFile(path.join(sharedData, 'train', row.file), path.join(dir, split, row.file));
  }
  await writeFile(path.join(dir, 'train_label.csv'), `${csv.train.join('\n')}\n`);
  await writeFile(path.join(dir, 'test_label.csv'), `${csv.test.join('\n')}\n`);
  return { dataDir: dir, labels, trainCount: csv.train.length - 1, testCount: csv.test.length - 1, flipped };
}
