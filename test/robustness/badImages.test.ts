// The bad-image policy as a user meets it at the command line: a data folder that mixes undecodable
// files with every odd but valid kind of image. With --on-bad-image error the run stops before it
// writes anything and lists every bad file. With skip it trains on the rest and records what it skipped.
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp, { type Sharp } from 'sharp';
import { decompressionBombPng } from '../image/fixtures.js';
import { assertUserError, copyMimlSubset, errorMessages, exists, logLines, mimlDir, runCli, trainArguments, writeLabelCsvs, type CliOutcome, type DataFolder, type LabelRow } from './harness.js';

/** A valid image in an unusual form, made from a real photo of the shared set. */
interface OddImage {
  name: string;
  encode: (photo: Sharp) => Sharp;
}

const oddImages: readonly OddImage[] = [
  { name: 'alpha.png', encode: (photo) => photo.ensureAlpha(0.5).png() },
  { name: 'gray.png', encode: (photo) => photo.toColourspace('b-w').png() },
  { name: 'cmyk.jpg', encode: (photo) => photo.toColourspace('cmyk').jpeg() },
  { name: 'deep.png', encode: (photo) => photo.toColourspace('rgb16').png() },
  { name: 'palette.png', encode: (photo) => photo.png({ palette: true, colours: 64 }) },
  { name: 'rotated.jpg', encode: (photo) => photo.jpeg().withMetadata({ orientation: 6 }) },
  { name: 'photo.webp', encode: (photo) => photo.webp() },
  { name: 'photo.gif', encode: (photo) => photo.gif() },
  { name: 'photo.tiff', encode: (photo) => photo.tiff({ compression: 'lzw' }) },
  { name: 'tiny.png', encode: (photo) => photo.resize(1, 1).png() },
  { name: 'beach photo 2.jpg', encode: (photo) => photo.jpeg() },
  { name: 'été 山の写真.jpg', encode: (photo) => photo.jpeg() },
];

/** Name of the symbolic link, in each image folder, to a photo outside the data folder. */
const linkName = 'linked.jpg';

/** An undecodable file, the split it is listed in, and the text of the reason the CLI must give. */
interface BadFile {
  split: 'train' | 'test';
  name: string;
  reason: RegExp;
}

const badFiles: readonly BadFile[] = [
  { split: 'train', name: 'empty.jpg', reason: /file is empty \(0 bytes\)\. Replace it/ },
  { split: 'train', name: 'truncated.jpg', reason: /image data is truncated or corrupt/ },
  { split: 'test', name: 'notes.jpg', reason: /not a JPEG, PNG, WebP, GIF, TIFF, AVIF or SVG image/ },
  { split: 'test', name: 'bomb.png', reason: /image is 20000x20000 = 400000000 pixels, more than the limit of 100000000 pixels\. .*--max-pixels/ },
];

let workDir: string;
let data: DataFolder;
let goodCounts: { train: number; test: number };
let outsidePhoto: string;

/** Returns the rows of shared photos outside the copied subset; each made file takes the labels of one. */
async function unusedRows(split: 'train' | 'test', used: readonly LabelRow[]): Promise<LabelRow[]> {
  const lines = (await readFile(path.join(mimlDir, `${split}_label.csv`), 'utf8')).trimEnd().split(/\r?\n/).slice(1);
  const usedNames = new Set(used.map((row) => row.file));
  return lines
    .map((line) => {
      const [file, ...cells] = line.split(',');
      return { file, cells };
    })
    .filter((row) => !usedNames.has(row.file));
}

async function writeBadFile(file: string, name: string, photo: string): Promise<void> {
  if (name === 'empty.jpg') {
    await writeFile(file, Buffer.alloc(0));
  } else if (name === 'truncated.jpg') {
    const whole = await readFile(photo);
    await writeFile(file, whole.subarray(0, Math.floor(whole.length * 0.6)));
  } else if (name === 'notes.jpg') {
    await writeFile(file, 'These are notes about the photos, not a JPEG.\n');
  } else {
    await writeFile(file, decompressionBombPng(20000, 20000));
  }
}

before(async () => {
  workDir = await mkdtemp(path.join(tmpdir(), 'multitag-bad-images-'));
  // 30 training and 15 test images, copied so the test can add files beside them.
  data = await copyMimlSubset(path.join(workDir, 'data'), 32, 16);

  outsidePhoto = path.join(workDir, 'elsewhere', 'outside.jpg');
  await mkdir(path.dirname(outsidePhoto));
  await copyFile(path.join(mimlDir, 'train', (await unusedRows('train', data.train))[0].file), outsidePhoto);

  for (const split of ['train', 'test'] as const) {
    const spare = (await unusedRows(split, data[split])).slice(1);
    let next = 0;
    for (const odd of oddImages) {
      const source = spare[next++];
      await odd.encode(sharp(path.join(mimlDir, split, source.file))).toFile(path.join(data.dir, split, odd.name));
      data[split].push({ file: odd.name, cells: source.cells });
    }
    await symlink(outsidePhoto, path.join(data.dir, split, linkName));
    data[split].push({ file: linkName, cells: spare[next++].cells });

    for (const bad of badFiles.filter((file) => file.split === split)) {
      const source = spare[next++];
      await writeBadFile(path.join(data.dir, split, bad.name), bad.name, path.join(mimlDir, split, source.file));
      data[split].push({ file: bad.name, cells: source.cells });
    }
  }
  await writeLabelCsvs(data);
  goodCounts = {
    train: data.train.length - badFiles.filter((file) => file.split === 'train').length,
    test: data.test.length - badFiles.filter((file) => file.split === 'test').length,
  };
});

after(async () => {
  await rm(workDir, { recursive: true, force: true });
});

function badPath(bad: BadFile): string {
  return path.join(data.dir, bad.split, bad.name);
}

describe('default policy error', () => {
  const outDir = (): string => path.join(workDir, 'run-error');
  let outcome: CliOutcome;

  before(async () => {
    outcome = await runCli(trainArguments(data.dir, outDir()));
  });

  test('bad images stop the run', () => {
    assertUserError(outcome, ['4 images of the data set cannot be decoded', '--on-bad-image skip']);
  });

  test('message lists every bad file', () => {
    const message = outcome.stderr.slice(outcome.stderr.indexOf(errorMessages(outcome.stderr)[0]));
    const listed = message.split('\n').filter((line) => line.startsWith('  '));

    assert.equal(listed.length, badFiles.length, `one line per bad file:\n${message}`);
    for (const bad of badFiles) {
      const line = listed.find((entry) => entry.startsWith(`  ${badPath(bad)}: `));
      assert.ok(line, `${badPath(bad)} is listed:\n${message}`);
      assert.match(line, bad.reason);
    }
  });

  test('valid odd images are not listed', () => {
    for (const odd of [...oddImages.map((image) => image.name), linkName]) {
      assert.ok(!outcome.stderr.includes(`/${odd}: `), `${odd} is not reported as bad:\n${outcome.stderr}`);
    }
  });

  test('no run folder is created', async () => {
    assert.equal(await exists(outDir()), false);
  });
});

describe('skip policy', () => {
  const outDir = (): string => path.join(workDir, 'run-skip');
  let outcome: CliOutcome;
  let warnings: string[];
  let config: { data: { trainCount: number; testCount: number; skipped: { file: string; reason: string }[] } };

  before(async () => {
    outcome = await runCli(trainArguments(data.dir, outDir(), ['--on-bad-image', 'skip']));
    warnings = logLines(outcome.stderr, 'WARN');
    if (outcome.code === 0) {
      config = JSON.parse(await readFile(path.join(outDir(), 'config.json'), 'utf8')) as typeof config;
    }
  });

  test('skip run finishes', () => {
    assert.equal(outcome.code, 0, outcome.stderr);
    assert.deepEqual(errorMessages(outcome.stderr), []);
  });

  test('each skipped file is logged', () => {
    for (const bad of badFiles) {
      const line = warnings.find((warning) => warning.startsWith(`skipped: ${badPath(bad)}: `));
      assert.ok(line, `a warning names ${badPath(bad)}:\n${warnings.join('\n')}`);
      assert.match(line, bad.reason);
    }
    assert.ok(warnings.includes(`skipped ${badFiles.length} images that cannot be decoded`), warnings.join('\n'));
  });

  test('config records skipped files', () => {
    const expected = [
      { file: badPath(badFiles[0]), reason: 'empty' },
      { file: badPath(badFiles[1]), reason: 'corrupt' },
      { file: badPath(badFiles[2]), reason: 'unsupported-format' },
      { file: badPath(badFiles[3]), reason: 'too-many-pixels' },
    ];

    assert.deepEqual(config.data.skipped, expected);
  });

  test('odd valid images all train', async () => {
    assert.equal(config.data.trainCount, goodCounts.train);
    assert.equal(config.data.testCount, goodCounts.test);
    assert.ok(logLines(outcome.stderr, 'INFO').includes(`training on ${goodCounts.train} images, testing on ${goodCounts.test}, labels: desert, mountains, sea, sunset, trees`));
    assert.ok(!warnings.some((warning) => oddImages.some((odd) => warning.includes(odd.name))), `no odd image is warned about:\n${warnings.join('\n')}`);
    assert.ok((await readdir(outDir())).includes('model.onnx'));
  });

  test('report leaves skipped files out', async () => {
    const files = await readdir(outDir());

    assert.deepEqual(logLines(outcome.stderr, 'ERROR'), [], 'the report step logs no error');
    assert.ok(files.includes('report.html'), `report.html is written: ${files.join(', ')}`);
    assert.ok(files.includes('grid.png'), `grid.png is written: ${files.join(', ')}`);
  });

  test('outside symbolic link is used with a warning', () => {
    for (const split of ['train', 'test']) {
      const link = path.join(data.dir, split, linkName);
      const warning = warnings.find((line) => line.includes(`${link} is a symbolic link to ${outsidePhoto}, outside the data folder; it is followed`));
      assert.ok(warning, `a warning names ${link}:\n${warnings.join('\n')}`);
      assert.ok(!config.data.skipped.some((skipped) => skipped.file === link), `${link} is not skipped`);
    }
  });
});
