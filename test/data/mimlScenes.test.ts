import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { labelMatrix, loadDataset } from '../../src/data/dataset.js';

// The compiled test runs from dist/test/data/, three levels below the repository root.
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const dataDir = path.resolve(repoRoot, '../shared/data/miml-scenes');

function positivesPerLabel(matrix: Uint8Array, labelCount: number): number[] {
  const counts = new Array<number>(labelCount).fill(0);
  for (let i = 0; i < matrix.length; i++) counts[i % labelCount] += matrix[i];
  return counts;
}

test('MIML scenes split loads', async () => {
  const { train, test: testSplit, warnings } = await loadDataset(dataDir);

  assert.deepEqual(warnings, []);
  assert.equal(train.items.length, 960);
  assert.equal(testSplit.items.length, 240);
  assert.deepEqual(train.labels, ['desert', 'mountains', 'sea', 'sunset', 'trees']);
  assert.deepEqual(testSplit.labels, train.labels);
  assert.equal(train.items[0].file, '2.jpg');
  assert.equal(train.items[0].path, path.join(dataDir, 'train', '2.jpg'));

  const counts = positivesPerLabel(labelMatrix(train), train.labels.length);
  assert.deepEqual(Object.fromEntries(train.labels.map((label, k) => [label, counts[k]])), {
    desert: 199,
    mountains: 220,
    sea: 293,
    sunset: 213,
    trees: 273,
  });
});
