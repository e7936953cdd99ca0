// The sanity grid: test images chosen with the run's seed, each titled with its true and predicted
// labels, green when the predicted label set equals the true one and red otherwise.
import { ImageData, type SKRSContext2D } from '@napi-rs/canvas';
import { mkdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { DatasetLayout, DatasetSplit } from '../data/dataset.js';
import { silentLog, silentProgress, type LogCallback, type ProgressCallback } from '../events.js';
import { writeFileAtomic } from '../files/atomic.js';
import type { RgbImage } from '../image/decode.js';
import { Random } from '../image/random.js';
import { loadEvaluationSplit } from '../train/evaluate.js';
import { Predictor } from '../train/predictor.js';
import { runFiles } from '../train/runFolder.js';
import { createPicture, fontFamily, missingFontWarning } from './chart.js';
import { targetsInLabelOrder } from './labelAnalysis.js';
import { readRunConfigSummary } from './runConfig.js';

/** One tile of the grid. */
export interface GridTile {
  /** The evaluation view the model saw. */
  image: RgbImage;
  file: string;
  trueLabels: string[];
  predictedLabels: string[];
}

/** Geometry of the grid picture, in pixels. */
export interface GridLayout {
  columns: number;
  rows: number;
  /** Side of the square image of a tile. */
  tileSize: number;
  /** Height of the title band above each image. */
  titleHeight: number;
  /** Height of the caption above the first row. */
  headerHeight: number;
  /** Space between tiles and around the grid. */
  gap: number;
}

/** Colours of the titles: GitHub's accessible green and red. */
export const titleColors = { match: '#1a7f37', mismatch: '#cf222e' } as const;

/** Default number of tiles per row and column. */
export const defaultGridSize = 6;

/** Returns the layout of a grid of `count` tiles, `columns` per row. */
export function gridLayout(count: number, columns: number, tileSize = 224): GridLayout {
  return { columns, rows: Math.max(1, Math.ceil(count / columns)), tileSize, titleHeight: 40, headerHeight: 34, gap: 8 };
}

/** Returns the pixel box of tile `index`: its title band starts at y and the image at imageY. */
export function gridTileBox(layout: GridLayout, index: number): { x: number; y: number; imageY: number; width: number } {
  const column = index % layout.columns;
  const row = Math.floor(index / layout.columns);
  const x = layout.gap + column * (layout.tileSize + layout.gap);
  const y = layout.headerHeight + row * (layout.titleHeight + layout.tileSize + layout.gap);
  return { x, y, imageY: y + layout.titleHeight, width: layout.tileSize };
}

/** Returns whether the predicted labels are exactly the true labels. */
export function isExactMatch(tile: Pick<GridTile, 'trueLabels' | 'predictedLabels'>): boolean {
  const truth = new Set(tile.trueLabels);
  return tile.predictedLabels.length === truth.size && tile.predictedLabels.every((label) => truth.has(label));
}

/** Draws the tiles in a grid of `columns` per row, with a caption counting exact matches, and encodes it as PNG. */
export async function drawSanityGrid(tiles: readonly GridTile[], columns: number, tileSize = 224): Promise<Buffer> {
  const layout = gridLayout(tiles.length, columns, tileSize);
  const width = layout.gap + columns * (layout.tileSize + layout.gap);
  const height = layout.headerHeight + layout.rows * (layout.titleHeight + layout.tileSize + layout.gap);
  const { canvas, context } = createPicture({ width, height });
  context.fillStyle = '#ffffff';
  context.fillRect(0, 0, width, height);

  const matches = tiles.filter(isExactMatch).length;
  context.fillStyle = '#24292f';
  context.font = `bold 15px ${fontFamily}`;
  context.textBaseline = 'middle';
  context.fillText(`${matches} of ${tiles.length} exact matches. Green title: predicted labels equal the true labels. Red: they differ.`, layout.gap, layout.headerHeight / 2);

  tiles.forEach((tile, index) => {
    const box = gridTileBox(layout, index);
    const color = isExactMatch(tile) ? titleColors.match : titleColors.mismatch;
    context.fillStyle = color;
    context.font = `bold 13px ${fontFamily}`;
    context.textBaseline = 'top';
    fitText(context, `true: ${labelList(tile.trueLabels)}`, box.x + 2, box.y + 3, box.width - 4);
    fitText(context, `pred: ${labelList(tile.predictedLabels)}`, box.x + 2, box.y + 20, box.width - 4);
    drawRgbImage(context, tile.image, box.x, box.imageY, layout.tileSize);
    context.strokeStyle = color;
    context.lineWidth = 2;
    context.strokeRect(box.x - 1, box.imageY - 1, layout.tileSize + 2, layout.tileSize + 2);
  });
  return canvas.encode('png');
}

function labelList(labels: readonly string[]): string {
  return labels.length === 0 ? '(none)' : labels.join(', ');
}

/** Writes text at (x, y), shortened with an ellipsis to fit `maxWidth`. */
function fitText(context: SKRSContext2D, text: string, x: number, y: number, maxWidth: number): void {
  let shown = text;
  while (shown.length > 1 && context.measureText(shown).width > maxWidth) {
    shown = `${shown.slice(0, -2)}…`;
  }
  context.fillText(shown, x, y);
}

/** Draws an RGB image scaled into a size x size square at (x, y). */
function drawRgbImage(context: SKRSContext2D, image: RgbImage, x: number, y: number, size: number): void {
  const rgba = new Uint8ClampedArray(image.width * image.height * 4);
  for (let pixel = 0; pixel < image.width * image.height; pixel++) {
    rgba[pixel * 4] = image.data[pixel * 3];
    rgba[pixel * 4 + 1] = image.data[pixel * 3 + 1];
    rgba[pixel * 4 + 2] = image.data[pixel * 3 + 2];
    rgba[pixel * 4 + 3] = 255;
  }
  const source = createPicture({ width: image.width, height: image.height });
  source.context.putImageData(new ImageData(rgba, image.width, image.height), 0, 0);
  context.drawImage(source.canvas, x, y, size, size);
}

/** Picks `count` items (all of them when there are fewer) in an order drawn from `seed`. */
export function chooseGridItems<T>(items: readonly T[], count: number, seed: number): T[] {
  const random = new Random(seed);
  return random.shuffle([...items]).slice(0, count);
}

/**
 * Runs the model on `count` images of `split` chosen with `seed` and returns the grid tiles. Labels are
 * matched to the model's labels by name, so the CSV may order its columns differently.
 */
export async function sanityGridTiles(
  predictor: Predictor,
  split: DatasetSplit,
  count: number,
  seed: number,
  onProgress: ProgressCallback = silentProgress,
  thresholds: readonly number[] = predictor.metadata.thresholds,
): Promise<GridTile[]> {
  const labels = predictor.metadata.labels;
  const targets = targetsInLabelOrder(split, labels);
  const chosen = chooseGridItems(split.items.map((_, index) => index), count, seed);
  const tiles: GridTile[] = [];
  const batchSize = 16;
  for (let start = 0; start < chosen.length; start += batchSize) {
    const batch = chosen.slice(start, start + batchSize);
    const views = await Promise.all(batch.map((index) => predictor.decodeView(split.items[index].path)));
    const { probabilities } = await predictor.runViews(views);
    batch.forEach((index, row) => {
      tiles.push({
        image: views[row],
        file: split.items[index].file,
        trueLabels: labels.filter((_, label) => targets[index * labels.length + label] === 1),
        predictedLabels: labels.filter((_, label) => probabilities[row * labels.length + label] >= thresholds[label]),
      });
    });
    onProgress({ task: 'sanity grid', done: start + batch.length, total: chosen.length, unit: 'images' });
  }
  return tiles;
}

/** Request of {@link writeSanityGrid}: a model, a labelled split and the grid settings. */
export interface SanityGridRequest {
  /** Run or export folder holding model.onnx and model.json. */
  modelDir: string;
  /** PNG file to write. */
  outPath: string;
  /** Data folder whose test split is shown, unless csvPath and imagesDir are given. */
  dataDir?: string;
  layout?: Partial<DatasetLayout>;
  csvPath?: string;
  imagesDir?: string;
  /** Tiles per row and column. */
  gridSize?: number;
  /** One decision threshold for every label instead of the model's own. */
  threshold?: number;
  /** Seed of the image choice. Defaults to training.seed of the run's config.json, or 0 for an export folder. */
  seed?: number;
  threads?: number;
  maxPixels?: number;
}

/** Outcome of {@link writeSanityGrid}. */
export interface SanityGridResult {
  path: string;
  tiles: number;
  exactMatches: number;
}

/** Chooses images from a labelled split, runs the model on them, and writes the sanity grid PNG atomically. */
export async function writeSanityGrid(request: SanityGridRequest, hooks: { log?: LogCallback; onProgress?: ProgressCallback } = {}): Promise<SanityGridResult> {
  const log = hooks.log ?? silentLog;
  const { split } = await loadEvaluationSplit(request);

  const seed = request.seed ?? (await runSeed(request.modelDir));
  const gridSize = request.gridSize ?? defaultGridSize;
  const warning = missingFontWarning();
  if (warning) {
    log('warn', warning);
  }

  const predictor = await Predictor.load(request.modelDir, { threads: request.threads, decode: { maxPixels: request.maxPixels } });
  try {
    const thresholds = request.threshold === undefined ? predictor.metadata.thresholds : predictor.metadata.labels.map(() => request.threshold!);
    const tiles = await sanityGridTiles(predictor, split, gridSize * gridSize, seed, hooks.onProgress, thresholds);
    await mkdir(dirname(request.outPath), { recursive: true });
    await writeFileAtomic(request.outPath, await drawSanityGrid(tiles, gridSize));
    return { path: request.outPath, tiles: tiles.length, exactMatches: tiles.filter(isExactMatch).length };
  } finally {
    await predictor.release();
  }
}

/** Returns training.seed of a run folder, or 0 for a folder without config.json, such as an export. */
async function runSeed(modelDir: string): Promise<number> {
  const hasConfig = await stat(join(modelDir, runFiles.config)).then(
    (info) => info.isFile(),
    () => false,
  );
  return hasConfig ? (await readRunConfigSummary(modelDir)).training.seed : 0;
}
