// Loads a dataset in the folder + CSV layout and checks it against the file system: every listed image
// must exist inside its image folder, and both splits must carry the same labels.
import { lstat, readdir, readFile, realpath, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import path from 'node:path';
import { parseLabelCsv } from './labelCsv.js';
import { DataValidationError, hasErrors, type DataProblem } from './problems.js';

/** One image of a split with its 0/1 targets. */
export interface DatasetItem {
  /** File name as written in the CSV. */
  file: string;
  /** Absolute path of the image file. */
  path: string;
  /** 0 or 1 per label, in the order of `DatasetSplit.labels`. */
  targets: Uint8Array;
}

/** The images and labels of one split, such as train or test. */
export interface DatasetSplit {
  name: string;
  /** Absolute path of the label CSV. */
  csvPath: string;
  /** Absolute path of the folder the CSV's file names are relative to. */
  imageDir: string;
  labels: string[];
  items: DatasetItem[];
}

/** File and folder names inside a data folder. Relative names are resolved against the data folder. */
export interface DatasetLayout {
  trainCsv: string;
  trainImages: string;
  testCsv: string;
  testImages: string;
}

export const defaultLayout: DatasetLayout = {
  trainCsv: 'train_label.csv',
  trainImages: 'train',
  testCsv: 'test_label.csv',
  testImages: 'test',
};

/** Options of `loadSplit`. */
export interface LoadSplitOptions {
  /**
   * Folder that the split's images are expected to stay in: a listed symbolic link whose target lies
   * outside gets a warning. Defaults to the parent folder of the image folder.
   */
  dataDir?: string;
  /** Sentence appended to messages about a missing CSV or image folder, describing the expected layout. */
  layoutHint?: string;
}

/** File name extensions, lower case, that count as images when looking for unlisted files. */
export const imageExtensions: ReadonlySet<string> = new Set([
  '.jpg',
  '.jpeg',
  '.png',
  '.webp',
  '.gif',
  '.tif',
  '.tiff',
  '.bmp',
  '.avif',
]);

/** How many unlisted image names a warning shows before it only gives the count. */
const UNLISTED_NAMES_SHOWN = 5;

/** How many listed files are checked on the file system at the same time. */
const CHECK_CONCURRENCY = 32;

function errnoCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

function describeFsError(error: unknown): string {
  const code = errnoCode(error);
  if (code === 'ENOENT') return 'not found';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'is a folder, not a file';
  if (code === 'ENOTDIR') return 'a parent of it is not a folder';
  return (error as Error).message;
}

function isInside(parent: string, child: string): boolean {
  const relative = path.relative(parent, child);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}

async function mapWithConcurrency<T, R>(inputs: readonly T[], limit: number, fn: (input: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(inputs.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < inputs.length) {
      const index = next++;
      results[index] = await fn(inputs[index]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, inputs.length) }, worker));
  return results;
}

/** Checks that `dir` is an existing folder, and returns an error problem if it is not. */
async function checkFolder(dir: string, description: string, hint: string): Promise<DataProblem | undefined> {
  let stats: Stats;
  try {
    stats = await stat(dir);
  } catch (error) {
    const reason = errnoCode(error) === 'ENOENT' ? 'not found' : describeFsError(error);
    return { severity: 'error', file: dir, message: `${description} ${reason}.${hint}` };
  }
  if (!stats.isDirectory()) {
    return { severity: 'error', file: dir, message: `${description} is not a folder.${hint}` };
  }
  return undefined;
}

interface ListedFileCheck {
  problem?: DataProblem;
  /** The resolved path of a valid image file. */
  path?: string;
  /** True when nothing exists at the listed name. */
  missing?: boolean;
}

/** Checks one listed file name against the image folder. */
async function checkListedFile(
  file: string,
  line: number,
  csvPath: string,
  imageDir: string,
  realDataDir: string | undefined,
): Promise<ListedFileCheck> {
  const error = (message: string): ListedFileCheck => ({ problem: { severity: 'error', file: csvPath, line, message } });

  const resolved = path.resolve(imageDir, file);
  if (path.isAbsolute(file) || !isInside(imageDir, resolved)) {
    return error(`file name "${file}" points outside the image folder ${imageDir}; use a path relative to that folder`);
  }

  let linkStats: Stats;
  try {
    linkStats = await lstat(resolved);
  } catch (cause) {
    if (errnoCode(cause) === 'ENOENT' || errnoCode(cause) === 'ENOTDIR') {
      return { ...error(`image file not found: ${resolved}; add the file or remove its row`), missing: true };
    }
    return error(`cannot read image file ${resolved}: ${describeFsError(cause)}`);
  }

  let targetStats = linkStats;
  if (linkStats.isSymbolicLink()) {
    try {
      targetStats = await stat(resolved);
    } catch (cause) {
      if (errnoCode(cause) === 'ENOENT' || errnoCode(cause) === 'ELOOP') {
        return error(`image file ${resolved} is a broken symbolic link; point it at an existing image or remove its row`);
      }
      return error(`cannot read image file ${resolved}: ${describeFsError(cause)}`);
    }
  }
  if (targetStats.isDirectory()) {
    return error(`${resolved} is a folder, not an image file; list image files only`);
  }
  if (!targetStats.isFile()) {
    return error(`${resolved} is not a regular file; list image files only`);
  }

  // A link in a subfolder name hides from lstat of the file itself, so compare real paths whenever
  // the name has more than one part.
  if (realDataDir !== undefined && (linkStats.isSymbolicLink() || file.includes('/'))) {
    const target = await realpath(resolved);
    if (!isInside(realDataDir, target)) {
      return {
        path: resolved,
        problem: {
          severity: 'warning',
          file: csvPath,
          line,
          message:
            `${resolved} is a symbolic link to ${target}, outside the data folder; it is followed, ` +
            'but the dataset breaks if that target moves',
        },
      };
    }
  }
  return { path: resolved };
}

/** Lists image files under `dir`, recursively, as paths relative to `dir` with '/' separators. */
async function listImageFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (relative: string): Promise<void> => {
    const entries = await readdir(path.join(dir, relative), { withFileTypes: true });
    for (const entry of entries) {
      const name = relative === '' ? entry.name : `${relative}/${entry.name}`;
      // Linked folders are not followed, so a link loop cannot make the walk endless.
      if (entry.isDirectory()) {
        await walk(name);
      } else if (imageExtensions.has(path.extname(entry.name).toLowerCase())) {
        found.push(name);
      }
    }
  };
  await walk('');
  return found.sort();
}

async function findUnlistedImages(imageDir: string, listed: readonly string[], csvPath: string): Promise<DataProblem[]> {
  let onDisk: string[];
  try {
    onDisk = await listImageFiles(imageDir);
  } catch (cause) {
    return [{ severity: 'error', file: imageDir, message: `cannot list the image folder (${describeFsError(cause)}); check its permissions` }];
  }
  const listedKeys = new Set(listed.map((file) => path.posix.normalize(file)));
  const unlisted = onDisk.filter((file) => !listedKeys.has(file));
  if (unlisted.length === 0) return [];

  const shownNames = unlisted.slice(0, UNLISTED_NAMES_SHOWN).join(', ');
  const more = unlisted.length > UNLISTED_NAMES_SHOWN ? `, and ${unlisted.length - UNLISTED_NAMES_SHOWN} more` : '';
  const count = unlisted.length === 1 ? '1 image file' : `${unlisted.length} image files`;
  return [
    {
      severity: 'warning',
      file: imageDir,
      message: `${count} not listed in ${csvPath} will be ignored: ${shownNames}${more}`,
    },
  ];
}

interface SplitResult {
  split: DatasetSplit;
  problems: DataProblem[];
  /** 1-based line of the CSV header, or undefined when the CSV could not be read. */
  headerLine: number | undefined;
}

/**
 * Reads one split's label CSV and checks each listed image against `imageDir`. Returns the split with
 * its valid rows and every problem found. Bad data never makes it throw.
 */
export async function loadSplit(
  name: string,
  csvPath: string,
  imageDir: string,
  options: LoadSplitOptions = {},
): Promise<{ split: DatasetSplit; problems: DataProblem[] }> {
  const { split, problems } = await readSplit(name, csvPath, imageDir, options);
  return { split, problems };
}

async function readSplit(
  name: string,
  csvPath: string,
  imageDir: string,
  options: LoadSplitOptions,
): Promise<SplitResult> {
  const csvFile = path.resolve(csvPath);
  const imageFolder = path.resolve(imageDir);
  const hint = options.layoutHint === undefined ? '' : ` ${options.layoutHint}`;
  const split: DatasetSplit = { name, csvPath: csvFile, imageDir: imageFolder, labels: [], items: [] };
  const problems: DataProblem[] = [];

  let text: string | undefined;
  try {
    text = await readFile(csvFile, 'utf8');
  } catch (cause) {
    const reason = errnoCode(cause) === 'ENOENT' ? 'not found' : describeFsError(cause);
    problems.push({
      severity: 'error',
      file: csvFile,
      message:
        `cannot read the ${name} label CSV (${reason}); expected a CSV with a header like ` +
        `"filename,label1,label2" listing the images in ${imageFolder}.${hint}`,
    });
  }

  const folderProblem = await checkFolder(imageFolder, `${name} image folder`, hint);
  if (folderProblem !== undefined) problems.push(folderProblem);
  if (text === undefined) return { split, problems, headerLine: undefined };

  const parsed = parseLabelCsv(text, csvFile);
  problems.push(...parsed.problems);
  split.labels = parsed.table.labels;
  const headerLine = parsed.table.headerLine;
  if (folderProblem !== undefined) return { split, problems, headerLine };

  const dataDir = path.resolve(options.dataDir ?? path.dirname(imageFolder));
  let realDataDir: string | undefined;
  try {
    realDataDir = await realpath(dataDir);
  } catch {
    // Without a real path for the data folder no link can be judged, so the check is skipped.
    realDataDir = undefined;
  }

  const rows = parsed.table.rows;
  const checks = await mapWithConcurrency(rows, CHECK_CONCURRENCY, (row) =>
    checkListedFile(row.file, row.line, csvFile, imageFolder, realDataDir),
  );

  // When no listed file exists at all, the folder is almost surely the wrong one, so report it once
  // instead of once per row, and skip the list of its unlisted files.
  if (rows.length > 1 && checks.every((check) => check.missing === true)) {
    problems.push({
      severity: 'error',
      file: csvFile,
      message:
        `none of the ${rows.length} images listed in this CSV is in ${imageFolder} ` +
        `(the first would be ${path.resolve(imageFolder, rows[0].file)}); check that the image folder belongs to this CSV.${hint}`,
    });
    return { split, problems, headerLine };
  }

  rows.forEach((row, index) => {
    const check = checks[index];
    if (check.problem !== undefined) problems.push(check.problem);
    if (check.path !== undefined) split.items.push({ file: row.file, path: check.path, targets: row.targets });
  });
  // The stable sort puts the CSV's problems in line order and keeps problems without a line first.
  problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));

  problems.push(...(await findUnlistedImages(imageFolder, parsed.table.listedFiles, csvFile)));
  return { split, problems, headerLine };
}

function describeLayout(dataDir: string, layout: DatasetLayout): string {
  return (
    `Expected layout: ${dataDir} containing ${layout.trainCsv} with its images in ${layout.trainImages}/, ` +
    `and ${layout.testCsv} with its images in ${layout.testImages}/.`
  );
}

function formatLabels(labels: readonly string[]): string {
  return `[${labels.join(', ')}]`;
}

/** Warns about each label that no train item carries, because a classifier cannot learn it. */
function findLabelsWithoutPositives(train: DatasetSplit, headerLine: number | undefined): DataProblem[] {
  if (train.items.length === 0) return [];
  const positives = new Array<number>(train.labels.length).fill(0);
  for (const item of train.items) {
    for (let k = 0; k < positives.length; k++) positives[k] += item.targets[k];
  }
  return train.labels.flatMap((label, k) =>
    positives[k] > 0
      ? []
      : [
          {
            severity: 'warning' as const,
            file: train.csvPath,
            line: headerLine,
            message: `label "${label}" has no positive example in the ${train.name} split, so it cannot be learned`,
          },
        ],
  );
}

/**
 * Loads the train and test splits of a data folder and checks both. Throws DataValidationError listing
 * every error of both splits at once. Otherwise returns the splits and the warnings.
 */
export async function loadDataset(
  dataDir: string,
  layout: Partial<DatasetLayout> = {},
): Promise<{ train: DatasetSplit; test: DatasetSplit; warnings: DataProblem[] }> {
  const root = path.resolve(dataDir);
  const fullLayout: DatasetLayout = { ...defaultLayout, ...layout };
  const layoutHint = describeLayout(root, fullLayout);

  const rootProblem = await checkFolder(root, 'data folder', ` ${layoutHint}`);
  if (rootProblem !== undefined) throw new DataValidationError([rootProblem]);

  const options: LoadSplitOptions = { dataDir: root, layoutHint };
  const [train, test] = await Promise.all([
    readSplit('train', path.resolve(root, fullLayout.trainCsv), path.resolve(root, fullLayout.trainImages), options),
    readSplit('test', path.resolve(root, fullLayout.testCsv), path.resolve(root, fullLayout.testImages), options),
  ]);
  const problems = [...train.problems, ...test.problems];

  const trainLabels = train.split.labels;
  const testLabels = test.split.labels;
  const sameLabels =
    trainLabels.length === testLabels.length && trainLabels.every((label, k) => label === testLabels[k]);
  if (trainLabels.length > 0 && testLabels.length > 0 && !sameLabels) {
    problems.push({
      severity: 'error',
      file: test.split.csvPath,
      line: test.headerLine,
      message:
        `labels differ between the splits: ${train.split.csvPath} has ${formatLabels(trainLabels)}, ` +
        `${test.split.csvPath} has ${formatLabels(testLabels)}; both CSVs need the same label columns in the same order`,
    });
  }

  if (hasErrors(problems)) throw new DataValidationError(problems);
  problems.push(...findLabelsWithoutPositives(train.split, train.headerLine));
  return { train: train.split, test: test.split, warnings: problems };
}

/** Returns the targets of a split as a row-major [items, labels] matrix. */
export function labelMatrix(split: DatasetSplit): Uint8Array {
  const labelCount = split.labels.length;
  const matrix = new Uint8Array(split.items.length * labelCount);
  split.items.forEach((item, index) => matrix.set(item.targets, index * labelCount));
  return matrix;
}
