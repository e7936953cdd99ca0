import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { defaultLayout, labelMatrix, loadDataset, loadSplit } from '../../src/data/dataset.js';
import { DataValidationError, formatProblem, type DataProblem } from '../../src/data/problems.js';

const tempDirs: string[] = [];

after(async () => {
  await Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function makeTempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'multitag-data-'));
  tempDirs.push(dir);
  return dir;
}

/** Writes placeholder files, because the data module checks existence, not image content. */
async function touch(dir: string, names: readonly string[]): Promise<void> {
  for (const name of names) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), 'not an image');
  }
}

interface DatasetSpec {
  trainCsv?: string;
  testCsv?: string;
  trainFiles?: string[];
  testFiles?: string[];
}

/** Creates a data folder in the default layout. Every part not given gets a small valid default. */
async function makeDataset(spec: DatasetSpec = {}): Promise<string> {
  const dir = await makeTempDir();
  await writeFile(path.join(dir, 'train_label.csv'), spec.trainCsv ?? 'filename,a,b\n1.jpg,1,0\n2.jpg,0,1\n');
  await writeFile(path.join(dir, 'test_label.csv'), spec.testCsv ?? 'filename,a,b\n3.jpg,1,1\n');
  await mkdir(path.join(dir, 'train'));
  await mkdir(path.join(dir, 'test'));
  await touch(path.join(dir, 'train'), spec.trainFiles ?? ['1.jpg', '2.jpg']);
  await touch(path.join(dir, 'test'), spec.testFiles ?? ['3.jpg']);
  return dir;
}

/** Runs loadDataset, expects a DataValidationError and returns it. */
async function loadExpectingErrors(dataDir: string): Promise<DataValidationError> {
  try {
    await loadDataset(dataDir);
  } catch (error) {
    assert.ok(error instanceof DataValidationError, `expected DataValidationError, got ${String(error)}`);
    return error;
  }
  assert.fail(`loadDataset(${dataDir}) did not throw`);
}

/** Asserts that `problems` is exactly one problem with these fields and a message matching `pattern`. */
function assertOneProblem(problems: DataProblem[], expected: Omit<DataProblem, 'message'>, pattern: RegExp): void {
  assert.equal(problems.length, 1, `expected one problem, got: ${JSON.stringify(problems)}`);
  const [problem] = problems;
  assert.equal(problem.severity, expected.severity);
  assert.equal(problem.file, expected.file);
  assert.equal(problem.line, expected.line);
  assert.match(problem.message, pattern);
}

test('valid dataset loads both splits', async () => {
  const dir = await makeDataset({ trainFiles: ['1.jpg', '2.jpg', 'notes.txt'] });
  const { train, test: testSplit, warnings } = await loadDataset(dir);

  assert.deepEqual(warnings, []);
  assert.equal(train.name, 'train');
  assert.equal(train.csvPath, path.join(dir, 'train_label.csv'));
  assert.equal(train.imageDir, path.join(dir, 'train'));
  assert.deepEqual(train.labels, ['a', 'b']);
  assert.deepEqual(
    train.items.map((item) => [item.file, item.path, Array.from(item.targets)]),
    [
      ['1.jpg', path.join(dir, 'train', '1.jpg'), [1, 0]],
      ['2.jpg', path.join(dir, 'train', '2.jpg'), [0, 1]],
    ],
  );
  assert.equal(testSplit.name, 'test');
  assert.deepEqual(testSplit.labels, ['a', 'b']);
  assert.deepEqual(
    testSplit.items.map((item) => item.path),
    [path.join(dir, 'test', '3.jpg')],
  );
});

test('labelMatrix is row-major items by labels', async () => {
  const dir = await makeDataset({
    trainCsv: 'filename,a,b,c\n1.jpg,1,0,0\n2.jpg,0,1,1\n',
    testCsv: 'filename,a,b,c\n3.jpg,0,0,1\n',
  });
  const { train } = await loadDataset(dir);
  assert.deepEqual(Array.from(labelMatrix(train)), [1, 0, 0, 0, 1, 1]);
});

test('relative data folder path is resolved', async () => {
  const dir = await makeDataset();
  const { train } = await loadDataset(path.relative(process.cwd(), dir));
  assert.equal(train.items[0].path, path.join(dir, 'train', '1.jpg'));
});

test('custom layout names', async () => {
  const dir = await makeTempDir();
  await writeFile(path.join(dir, 'fit.csv'), 'name,x\nsub/a.jpg,1\n');
  await writeFile(path.join(dir, 'holdout.csv'), 'name,x\nb.png,0\n');
  await touch(path.join(dir, 'images', 'fit'), ['sub/a.jpg']);
  await touch(path.join(dir, 'images', 'holdout'), ['b.png']);

  const { train, test: testSplit, warnings } = await loadDataset(dir, {
    trainCsv: 'fit.csv',
    trainImages: 'images/fit',
    testCsv: 'holdout.csv',
    testImages: 'images/holdout',
  });
  assert.deepEqual(warnings, []);
  assert.equal(train.items[0].path, path.join(dir, 'images', 'fit', 'sub', 'a.jpg'));
  assert.equal(testSplit.items[0].path, path.join(dir, 'images', 'holdout', 'b.png'));
  assert.deepEqual(defaultLayout, {
    trainCsv: 'train_label.csv',
    trainImages: 'train',
    testCsv: 'test_label.csv',
    testImages: 'test',
  });
});

test('missing data folder is an error', async () => {
  const parent = await makeTempDir();
  const dir = path.join(parent, 'nothing-here');
  const error = await loadExpectingErrors(dir);
  assertOneProblem(
    error.problems,
    { severity: 'error', file: dir, line: undefined },
    /data folder not found\. Expected layout: .*train_label\.csv with its images in train\//,
  );
});

test('missing CSV names path and layout', async () => {
  const dir = await makeDataset();
  await rm(path.join(dir, 'test_label.csv'));
  const error = await loadExpectingErrors(dir);
  const csvPath = path.join(dir, 'test_label.csv');
  assertOneProblem(
    error.problems,
    { severity: 'error', file: csvPath, line: undefined },
    /cannot read the test label CSV \(not found\).*Expected layout: .* test_label\.csv with its images in test\//,
  );
  assert.match(error.message, new RegExp(`^${csvPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: cannot read`, 'm'));
});

test('CSV that is a folder is an error', async () => {
  const dir = await makeDataset();
  await rm(path.join(dir, 'train_label.csv'));
  await mkdir(path.join(dir, 'train_label.csv'));
  const error = await loadExpectingErrors(dir);
  assertOneProblem(
    error.problems,
    { severity: 'error', file: path.join(dir, 'train_label.csv'), line: undefined },
    /cannot read the train label CSV \(is a folder, not a file\)/,
  );
});

test('missing image folder is an error', async () => {
  const dir = await makeDataset();
  await rm(path.join(dir, 'train'), { recursive: true });
  const error = await loadExpectingErrors(dir);
  assertOneProblem(
    error.problems,
    { severity: 'error', file: path.join(dir, 'train'), line: undefined },
    /train image folder not found\. Expected layout/,
  );
});

test('header problems reach the error', async () => {
  const dir = await makeDataset({ trainCsv: 'filename\n1.jpg\n', trainFiles: ['1.jpg'] });
  const error = await loadExpectingErrors(dir);
  assertOneProblem(
    error.problems,
    { severity: 'error', file: path.join(dir, 'train_label.csv'), line: 1 },
    /the header has 1 column, expected at least 2/,
  );
});

test('missing image file is an error', async () => {
  const dir = await makeDataset({ trainFiles: ['1.jpg'] });
  const error = await loadExpectingErrors(dir);
  assertOneProblem(
    error.problems,
    { severity: 'error', file: path.join(dir, 'train_label.csv'), line: 3 },
    new RegExp(`image file not found: ${path.join(dir, 'train', '2.jpg')}; add the file or remove its row`),
  );
});

test('folder with none of the listed images is one error', async () => {
  const dir = await makeDataset({ trainFiles: ['other-1.jpg', 'other-2.jpg', 'other-3.jpg'] });
  const error = await loadExpectingErrors(dir);
  assertOneProblem(
    error.problems,
    { severity: 'error', file: path.join(dir, 'train_label.csv'), line: undefined },
    new RegExp(`none of the 2 images listed in this CSV is in ${path.join(dir, 'train')} \\(the first would be ${path.join(dir, 'train', '1.jpg')}\\); check that the image folder belongs to this CSV`),
  );
  assert.equal(error.message.split('\n').at(-1), 'Fix the listed problems and run the command again.', 'no CSV format advice for a folder problem');
});

test('one listed image alone missing is a row error', async () => {
  const dir = await makeDataset({ testFiles: ['other.jpg'] });
  const error = await loadExpectingErrors(dir);
  assert.equal(error.problems.filter((problem) => problem.severity === 'error').length, 1);
  assert.match(error.problems[0].message, /image file not found: .*3\.jpg; add the file or remove its row/);
});

test('broken symbolic link is an error', async () => {
  const dir = await makeDataset({ trainFiles: ['1.jpg'] });
  await symlink(path.join(dir, 'gone.jpg'), path.join(dir, 'train', '2.jpg'));
  const error = await loadExpectingErrors(dir);
  assertOneProblem(
    error.problems,
    { severity: 'error', file: path.join(dir, 'train_label.csv'), line: 3 },
    /train\/2\.jpg is a broken symbolic link/,
  );
});

test('listed folder is an error', async () => {
  const dir = await makeDataset({ trainFiles: ['1.jpg'] });
  await mkdir(path.join(dir, 'train', '2.jpg'));
  const error = await loadExpectingErrors(dir);
  assertOneProblem(
    error.problems,
    { severity: 'error', file: path.join(dir, 'train_label.csv'), line: 3 },
    /train\/2\.jpg is a folder, not an image file/,
  );
});

test('file name escaping the image folder is an error', async () => {
  const dir = await makeDataset({
    trainCsv: `filename,a,b\n1.jpg,1,0\n../outside.jpg,0,1\n/etc/hostname,0,0\nsub/../../x.jpg,0,0\n`,
    trainFiles: ['1.jpg'],
  });
  await touch(dir, ['outside.jpg', 'x.jpg']);
  const error = await loadExpectingErrors(dir);
  const csvPath = path.join(dir, 'train_label.csv');
  assert.deepEqual(
    error.problems.map((problem) => [problem.severity, problem.file, problem.line]),
    [
      ['error', csvPath, 3],
      ['error', csvPath, 4],
      ['error', csvPath, 5],
    ],
  );
  assert.match(error.problems[0].message, /file name "\.\.\/outside\.jpg" points outside the image folder/);
  assert.match(error.problems[1].message, /file name "\/etc\/hostname" points outside the image folder/);
  assert.match(error.problems[2].message, /file name "sub\/\.\.\/\.\.\/x\.jpg" points outside the image folder/);
});

test('different labels in the splits is an error', async () => {
  const dir = await makeDataset({ testCsv: '\nfilename,b,a\n3.jpg,1,1\n' });
  const error = await loadExpectingErrors(dir);
  const trainCsv = path.join(dir, 'train_label.csv');
  const testCsv = path.join(dir, 'test_label.csv');
  assertOneProblem(
    error.problems,
    { severity: 'error', file: testCsv, line: 2 },
    /labels differ between the splits/,
  );
  assert.ok(error.problems[0].message.includes(`${trainCsv} has [a, b], ${testCsv} has [b, a]`), error.problems[0].message);
});

test('errors of both splits are reported at once', async () => {
  const dir = await makeDataset({
    trainCsv: 'filename,a,b\n1.jpg,1,0\n2.jpg,0,2\n',
    testCsv: 'filename,a,b\n3.jpg,1,1\n4.jpg,0,0\n3.jpg,0,1\n',
    trainFiles: ['2.jpg'],
  });
  const error = await loadExpectingErrors(dir);
  const trainCsv = path.join(dir, 'train_label.csv');
  const testCsv = path.join(dir, 'test_label.csv');
  assert.deepEqual(
    error.errors.map((problem) => [problem.file, problem.line]),
    [
      [trainCsv, 2],
      [trainCsv, 3],
      [testCsv, 3],
      [testCsv, 4],
    ],
  );

  const lines = error.message.split('\n');
  assert.equal(lines[0], 'Invalid dataset (4 errors):');
  assert.deepEqual(lines.slice(1, 5), error.errors.map(formatProblem));
  assert.match(lines[2], new RegExp(`^${trainCsv.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3: invalid value "2"`));
  // 2.jpg has a row, although an invalid one, so it must not be reported as unlisted.
  assert.equal(error.problems.length, 4, JSON.stringify(error.problems));
  assert.match(lines[5], /^Fix the listed problems and run the command again\. Each label CSV needs a header like "filename,label1,label2"/);
  assert.equal(lines.length, 6);
});

test('unlisted images give one warning per split', async () => {
  const trainExtra = ['x1.JPG', 'x2.png', 'x3.webp', 'x4.gif', 'x5.tif', 'x6.TIFF', 'x7.bmp', 'x8.avif', 'sub/x9.jpeg'];
  const dir = await makeDataset({
    trainFiles: ['1.jpg', '2.jpg', ...trainExtra, 'readme.txt', 'labels.csv'],
    testFiles: ['3.jpg', 'y.jpg'],
  });
  const { warnings } = await loadDataset(dir);
  assert.equal(warnings.length, 2, JSON.stringify(warnings));

  const [trainWarning, testWarning] = warnings;
  assert.equal(trainWarning.severity, 'warning');
  assert.equal(trainWarning.file, path.join(dir, 'train'));
  assert.equal(trainWarning.line, undefined);
  assert.equal(
    trainWarning.message,
    `9 image files not listed in ${path.join(dir, 'train_label.csv')} will be ignored: ` +
      'sub/x9.jpeg, x1.JPG, x2.png, x3.webp, x4.gif, and 4 more',
  );
  assert.equal(testWarning.file, path.join(dir, 'test'));
  assert.match(testWarning.message, /^1 image file not listed in .*test_label\.csv will be ignored: y\.jpg$/);
});

test('label without train positives is a warning', async () => {
  const dir = await makeDataset({
    trainCsv: 'filename,a,b,c\n1.jpg,1,0,0\n2.jpg,0,0,0\n',
    testCsv: 'filename,a,b,c\n3.jpg,0,1,0\n',
  });
  const { warnings } = await loadDataset(dir);
  assert.deepEqual(
    warnings.map((warning) => [warning.severity, warning.file, warning.line]),
    [
      ['warning', path.join(dir, 'train_label.csv'), 1],
      ['warning', path.join(dir, 'train_label.csv'), 1],
    ],
  );
  assert.match(warnings[0].message, /label "b" has no positive example in the train split/);
  assert.match(warnings[1].message, /label "c" has no positive example in the train split/);
});

test('symbolic link outside data folder is a warning', async () => {
  const outside = await makeTempDir();
  await touch(outside, ['elsewhere.jpg', 'folder/deep.jpg']);
  const dir = await makeDataset({
    trainCsv: 'filename,a,b\n1.jpg,1,0\n2.jpg,0,1\nlinked/deep.jpg,1,1\ninside.jpg,0,0\n',
    trainFiles: ['1.jpg'],
  });
  await symlink(path.join(outside, 'elsewhere.jpg'), path.join(dir, 'train', '2.jpg'));
  await symlink(path.join(outside, 'folder'), path.join(dir, 'train', 'linked'));
  await symlink(path.join(dir, 'train', '1.jpg'), path.join(dir, 'train', 'inside.jpg'));

  const { train, warnings } = await loadDataset(dir);
  assert.deepEqual(
    warnings.map((warning) => [warning.severity, warning.file, warning.line]),
    [
      ['warning', path.join(dir, 'train_label.csv'), 3],
      ['warning', path.join(dir, 'train_label.csv'), 4],
    ],
  );
  assert.match(warnings[0].message, /train\/2\.jpg is a symbolic link to .*elsewhere\.jpg, outside the data folder/);
  assert.match(warnings[1].message, /train\/linked\/deep\.jpg is a symbolic link to .*folder\/deep\.jpg, outside/);
  assert.deepEqual(
    train.items.map((item) => item.file),
    ['1.jpg', '2.jpg', 'linked/deep.jpg', 'inside.jpg'],
  );
});

test('file names with spaces and non-ASCII', async () => {
  const names = ['my photo 1.jpg', 'Ñandú über.jpg', '日本の山.png', 'sub dir/x y.jpeg'];
  const dir = await makeDataset({
    trainCsv: ['filename,a,b', ...names.map((name, i) => `"${name}",${i % 2},1`)].join('\n'),
    trainFiles: names,
  });
  const { train, warnings } = await loadDataset(dir);
  assert.deepEqual(warnings, []);
  assert.deepEqual(
    train.items.map((item) => item.file),
    names,
  );
  assert.equal(train.items[2].path, path.join(dir, 'train', '日本の山.png'));
});

test('NFC and NFD names are compared as given', { skip: process.platform !== 'linux' }, async () => {
  // Linux file systems compare names byte by byte, so the two forms are two different files there.
  const composed = 'caf\u00e9.jpg';
  const decomposed = 'cafe\u0301.jpg';
  const dir = await makeDataset({
    trainCsv: `filename,a,b\n1.jpg,1,0\n2.jpg,0,1\n${composed},1,1\n`,
    trainFiles: ['1.jpg', '2.jpg', decomposed],
  });
  const error = await loadExpectingErrors(dir);
  const [notFound, unlisted] = error.problems;
  assert.equal(error.problems.length, 2);
  assert.equal(notFound.severity, 'error');
  assert.equal(notFound.line, 4);
  assert.ok(notFound.message.includes(`image file not found: ${path.join(dir, 'train', composed)}`));
  assert.equal(unlisted.severity, 'warning');
  assert.ok(unlisted.message.endsWith(`will be ignored: ${decomposed}`), unlisted.message);
});

test('loadSplit returns problems without throwing', async () => {
  const dir = await makeTempDir();
  await writeFile(path.join(dir, 'labels.csv'), 'filename,a\n1.jpg,1\n2.jpg,1\n');
  await touch(path.join(dir, 'images'), ['1.jpg']);

  const { split, problems } = await loadSplit('val', path.join(dir, 'labels.csv'), path.join(dir, 'images'));
  assert.equal(split.name, 'val');
  assert.deepEqual(split.labels, ['a']);
  assert.deepEqual(
    split.items.map((item) => item.file),
    ['1.jpg'],
  );
  assertOneProblem(
    problems,
    { severity: 'error', file: path.join(dir, 'labels.csv'), line: 3 },
    /image file not found: .*images\/2\.jpg/,
  );
});

test('loadSplit reports missing CSV and image folder together', async () => {
  const dir = await makeTempDir();
  const { problems } = await loadSplit('val', path.join(dir, 'labels.csv'), path.join(dir, 'images'));
  assert.deepEqual(
    problems.map((problem) => [problem.severity, problem.file, problem.line]),
    [
      ['error', path.join(dir, 'labels.csv'), undefined],
      ['error', path.join(dir, 'images'), undefined],
    ],
  );
  assert.match(problems[0].message, /cannot read the val label CSV \(not found\); expected a CSV with a header/);
  assert.match(problems[1].message, /val image folder not found/);
});

test('formatProblem with and without line', () => {
  assert.equal(formatProblem({ severity: 'error', file: '/d/a.csv', line: 7, message: 'bad' }), '/d/a.csv:7: bad');
  assert.equal(formatProblem({ severity: 'warning', file: '/d/train', message: 'odd' }), '/d/train: odd');
});

test('DataValidationError lists only errors', () => {
  const error = new DataValidationError([
    { severity: 'warning', file: '/d/train', message: 'unlisted' },
    { severity: 'error', file: '/d/a.csv', line: 2, message: 'bad value' },
  ]);
  assert.equal(error.name, 'DataValidationError');
  assert.equal(error.problems.length, 2);
  assert.equal(error.errors.length, 1);
  assert.equal(error.message.split('\n')[0], 'Invalid dataset (1 error):');
  assert.equal(error.message.split('\n')[1], '/d/a.csv:2: bad value');
  assert.ok(!error.message.includes('unlisted'));
});
