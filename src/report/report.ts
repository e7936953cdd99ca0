// The run report: one self-contained HTML page with the config, training curves, metrics, per-label
// analysis, sanity grid and the top mislabel suspects of a run.
import { mkdir } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import sharp from 'sharp';
import { defaultLayout, loadSplit, type DatasetLayout } from '../data/dataset.js';
import { DataValidationError, hasErrors } from '../data/problems.js';
import { silentLog, silentProgress, type LogCallback, type ProgressCallback } from '../events.js';
import { writeFileAtomic } from '../files/atomic.js';
import { computeMetrics, type MultiLabelMetrics } from '../metrics/index.js';
import type { TrainingCallback } from '../train/callbacks.js';
import { Predictor } from '../train/predictor.js';
import { runFiles } from '../train/runFolder.js';
import { auditLabels, type CrossValidationSettings, type LabelAudit } from './audit.js';
import { auditCsv, defaultSuspectCount, suspectGalleryHtml, suspectLabelTable } from './auditOutput.js';
import { missingFontWarning } from './chart.js';
import { drawTrainingCurves, TrainingCurves } from './curves.js';
import { defaultGridSize, drawSanityGrid, isExactMatch, sanityGridTiles } from './grid.js';
import { escapeHtml, formatMetric, htmlPage, htmlTable, pngDataUri } from './html.js';
import { cooccurrenceMatrix, drawPrecisionRecallCurves, predictionMatrix, targetsInLabelOrder } from './labelAnalysis.js';
import { dataLayoutOf, readRunConfigSummary, readRunMetrics, readTrainingLog, type RunConfigSummary, type StoredMetrics } from './runConfig.js';

/** File names the report writes into a run folder by default. */
export const reportFiles = {
  report: 'report.html',
  grid: 'grid.png',
  /** Audit scores of every image and label, written with the report at the end of training. */
  auditCsv: 'audit.csv',
} as const;

/** Request of {@link writeRunReport}: the run, the data and the report settings. */
export interface ReportRequest {
  /** Run folder of multitag train. */
  runDir: string;
  /** Data folder whose test split is evaluated and whose two splits are audited. Defaults to the run's data folder. */
  dataDir?: string;
  /** File names inside the data folder. They default to the run's layout when dataDir is not given. */
  layout?: Partial<DatasetLayout>;
  /** HTML file to write. Defaults to report.html in the run folder. */
  outPath?: string;
  /** Also write the sanity grid as PNG to this path. */
  gridPath?: string;
  /** Also write the audit's CSV of every image and label to this path. */
  auditCsvPath?: string;
  /** Tiles per row and column of the sanity grid. */
  gridSize?: number;
  /** Mislabel suspects to show. 0 skips the audit. */
  suspects?: number;
  crossValidation?: Partial<CrossValidationSettings>;
  threads?: number;
  maxPixels?: number;
}

/** Outcome of {@link writeRunReport}. */
export interface ReportResult {
  path: string;
  /** Metrics of the model on the evaluated test split at its thresholds. */
  metrics: MultiLabelMetrics;
  /** Test images evaluated. */
  count: number;
  audit?: LabelAudit;
}

/** Everything the page shows. */
interface ReportContent {
  config: RunConfigSummary;
  runDir: string;
  dataDir: string;
  /** Test metrics that training stored in metrics.json, one entry per set of thresholds. */
  runMetrics: StoredMetrics[];
  metrics: MultiLabelMetrics;
  count: number;
  labels: string[];
  thresholds: number[];
  curvesPng?: Buffer;
  precisionRecallPng: Buffer;
  gridJpeg: Buffer;
  gridMatches: { matches: number; tiles: number };
  dataCooccurrence: number[][];
  predictedCooccurrence: number[][];
  suspectsHtml?: string;
}

/**
 * Evaluates the run's model on the test split, draws curves, precision-recall curves and the sanity
 * grid, audits the labels of both splits, and writes everything into one self-contained HTML file.
 */
export async function writeRunReport(request: ReportRequest, hooks: { log?: LogCallback; onProgress?: ProgressCallback } = {}): Promise<ReportResult> {
  const log = hooks.log ?? silentLog;
  const onProgress = hooks.onProgress ?? silentProgress;
  const runDir = request.runDir;
  const config = await readRunConfigSummary(runDir);
  const runMetrics = await readRunMetrics(runDir);
  const records = await readTrainingLog(join(runDir, runFiles.log));
  const dataDir = request.dataDir ?? config.data.dir;
  const layout: DatasetLayout = { ...defaultLayout, ...(request.dataDir === undefined ? dataLayoutOf(config) : {}), ...request.layout };
  const warning = missingFontWarning();
  if (warning) {
    log('warn', warning);
  }

  const { split, problems } = await loadSplit('test', resolve(dataDir, layout.testCsv), resolve(dataDir, layout.testImages));
  if (hasErrors(problems)) {
    throw new DataValidationError(problems);
  }

  const predictor = await Predictor.load(runDir, { threads: request.threads, decode: { maxPixels: request.maxPixels ?? config.training.maxPixels } });
  let content: Omit<ReportContent, 'suspectsHtml'>;
  try {
    const { labels, thresholds } = predictor.metadata;
    const allTargets = targetsInLabelOrder(split, labels);
    const { predictions, failures } = await predictor.predictFiles(split.items.map((item) => item.path), {
      onProgress: (progress) => onProgress({ ...progress, task: 'report predictions' }),
    });
    for (const failure of failures) {
      log('warn', `left out of the report: ${failure.message}`);
    }
    const rowOfPath = new Map(split.items.map((item, row) => [item.path, row]));
    const logits = new Float32Array(predictions.length * labels.length);
    const probabilities = new Float32Array(predictions.length * labels.length);
    const targets = new Uint8Array(predictions.length * labels.length);
    predictions.forEach((prediction, row) => {
      logits.set(prediction.logits, row * labels.length);
      probabilities.set(prediction.probabilities, row * labels.length);
      const sourceRow = rowOfPath.get(prediction.file)!;
      targets.set(allTargets.subarray(sourceRow * labels.length, (sourceRow + 1) * labels.length), row * labels.length);
    });
    const metrics = computeMetrics({ logits, targets, labels, thresholds });

    // The grid shows only images that decoded, so one bad file does not cost the whole report.
    const failedPaths = new Set(failures.map((failure) => failure.file));
    const decodedSplit = { ...split, items: split.items.filter((item) => !failedPaths.has(item.path)) };
    const gridSize = request.gridSize ?? defaultGridSize;
    const tiles = await sanityGridTiles(predictor, decodedSplit, gridSize * gridSize, config.training.seed, onProgress);
    const gridPng = await drawSanityGrid(tiles, gridSize);
    if (request.gridPath) {
      await mkdir(dirname(request.gridPath), { recursive: true });
      await writeFileAtomic(request.gridPath, gridPng);
    }

    content = {
      config,
      runDir,
      dataDir,
      runMetrics,
      metrics,
      count: predictions.length,
      labels,
      thresholds,
      curvesPng: records.length > 0 ? await drawTrainingCurves(records) : undefined,
      precisionRecallPng: await drawPrecisionRecallCurves(probabilities, targets, labels, metrics.perLabel, thresholds),
      // Photos compress far better as JPEG, so the page embeds a JPEG and gridPath gets the PNG.
      gridJpeg: await sharp(gridPng).jpeg({ quality: 85 }).toBuffer(),
      gridMatches: { matches: tiles.filter(isExactMatch).length, tiles: tiles.length },
      dataCooccurrence: cooccurrenceMatrix(targets, labels.length),
      predictedCooccurrence: cooccurrenceMatrix(predictionMatrix(probabilities, thresholds), labels.length),
    };
  } finally {
    await predictor.release();
  }

  const suspects = request.suspects ?? defaultSuspectCount;
  let audit: LabelAudit | undefined;
  let suspectsHtml: string | undefined;
  if (suspects > 0) {
    audit = await auditLabels(
      { modelDir: runDir, dataDir, layout, crossValidation: request.crossValidation, threads: request.threads, maxPixels: request.maxPixels },
      { log, onProgress },
    );
    suspectsHtml = `${suspectLabelTable(audit, suspects)}\n${await suspectGalleryHtml(audit, suspects, request.maxPixels)}`;
    if (request.auditCsvPath) {
      await writeFileAtomic(request.auditCsvPath, auditCsv(audit));
    }
  }

  const outPath = request.outPath ?? join(runDir, reportFiles.report);
  await mkdir(dirname(outPath), { recursive: true });
  await writeFileAtomic(outPath, reportHtml({ ...content, suspectsHtml }));
  return { path: outPath, metrics: content.metrics, count: content.count, audit };
}

const summaryMetrics: readonly [keyof MultiLabelMetrics, string][] = [
  ['microF1', 'micro-F1'],
  ['macroF1', 'macro-F1'],
  ['mAP', 'mAP'],
  ['exactMatch', 'exact match'],
  ['hammingLoss', 'Hamming loss'],
  ['bce', 'BCE'],
  ['microPrecision', 'micro precision'],
  ['microRecall', 'micro recall'],
];

function summaryTable(content: ReportContent): string {
  const rows = summaryMetrics.map(([key, name]) => [
    name,
    ...content.runMetrics.map((stored, column) => `<span data-metric="run-${column}-${key}">${formatMetric(stored.metrics[key] as number)}</span>`),
    `<span data-metric="evaluation-${key}">${formatMetric(content.metrics[key] as number)}</span>`,
  ]);
  const header = [
    'metric',
    ...content.runMetrics.map((stored) => `training run, ${escapeHtml(stored.title)} (metrics.json)`),
    `this evaluation (${content.count} test images, model.json thresholds)`,
  ];
  const note = content.runMetrics.length === 0 ? `<p class="muted">The run folder has no ${runFiles.metrics} yet, so only this evaluation is shown.</p>\n` : '';
  return `${note}${htmlTable(header, rows)}`;
}

function perLabelTable(content: ReportContent): string {
  const rows = content.labels.map((label, index) => {
    const values = content.metrics.perLabel[label];
    return [
      escapeHtml(label),
      content.thresholds[index].toFixed(3),
      String(values.support),
      formatMetric(values.precision),
      formatMetric(values.recall),
      formatMetric(values.f1),
      formatMetric(values.ap),
      String(values.tp),
      String(values.fp),
      String(values.fn),
      String(values.tn),
    ];
  });
  return htmlTable(['label', 'threshold', 'support', 'precision', 'recall', 'F1', 'AP', 'TP', 'FP', 'FN', 'TN'], rows);
}

/** Renders a co-occurrence matrix as a table shaded by count relative to the largest entry. */
function matrixTable(labels: readonly string[], matrix: number[][]): string {
  const max = Math.max(1, ...matrix.flat());
  const header = ['', ...labels.map(escapeHtml)];
  const rows = matrix.map((row, a) => [
    `<b>${escapeHtml(labels[a])}</b>`,
    ...row.map((count) => `<span style="display:block;background:rgba(9,105,218,${(0.75 * count / max).toFixed(3)})">${count}</span>`),
  ]);
  return htmlTable(header, rows, 'matrix');
}

function configTable(config: RunConfigSummary): string {
  const training = config.training;
  const rows: [string, string][] = [
    ['created', config.createdAt],
    ['labels', config.labels.join(', ')],
    ['backbone', `${config.backbone.source} (${config.backbone.path})`],
    ['features', `${config.backbone.featureName}, ${config.backbone.featureSize} values`],
    ['preprocessing', `${config.backbone.preprocessing.inputSize} px, mean ${config.backbone.preprocessing.mean.join(', ')}, std ${config.backbone.preprocessing.std.join(', ')}`],
    ['data', `${config.data.dir}: ${config.data.trainCount} train, ${config.data.testCount} test images`],
    ...Object.entries(training)
      .filter(([, value]) => typeof value !== 'object' || value === null)
      .map(([key, value]): [string, string] => [key, String(value)]),
  ];
  return htmlTable(['setting', 'value'], rows.map(([key, value]) => [escapeHtml(key), escapeHtml(value)]), 'settings');
}

function reportHtml(content: ReportContent): string {
  const name = basename(resolve(content.runDir));
  const picture = (uri: string, alt: string): string => `<img class="picture" src="${uri}" alt="${escapeHtml(alt)}">`;
  const sections = [
    `<h1>multitag run report: ${escapeHtml(name)}</h1>
<p class="muted">Run folder ${escapeHtml(resolve(content.runDir))}, trained ${escapeHtml(content.config.createdAt)}. Evaluated on the test split of ${escapeHtml(content.dataDir)}. Report written ${escapeHtml(new Date().toISOString())}.</p>
<nav><a href="#metrics">Metrics</a><a href="#curves">Curves</a><a href="#labels">Per label</a><a href="#cooccurrence">Co-occurrence</a><a href="#grid">Sanity grid</a><a href="#suspects">Mislabel suspects</a><a href="#config">Config</a></nav>`,
    `<h2 id="metrics">Metrics</h2>\n${summaryTable(content)}`,
    `<h2 id="curves">Training curves</h2>\n${
      content.curvesPng ? picture(pngDataUri(content.curvesPng), 'cost, micro-F1 and mAP per epoch') : `<p class="muted">The run folder has no ${runFiles.log} yet.</p>`
    }`,
    `<h2 id="labels">Per label</h2>\n<p class="muted">Counts at each label's decision threshold on ${content.count} test images.</p>\n${perLabelTable(content)}\n<h3>Precision-recall curves</h3>\n<p class="muted">The marker shows the precision and recall at the label's threshold.</p>\n${picture(pngDataUri(content.precisionRecallPng), 'precision-recall curve per label')}`,
    `<h2 id="cooccurrence">Label co-occurrence</h2>\n<p class="muted">Entry (row, column) counts the test images that carry both labels; the diagonal counts each label.</p>
<div style="display:flex;gap:2rem;flex-wrap:wrap"><div><h3>True labels</h3>${matrixTable(content.labels, content.dataCooccurrence)}</div><div><h3>Predicted labels</h3>${matrixTable(content.labels, content.predictedCooccurrence)}</div></div>`,
    `<h2 id="grid">Sanity grid</h2>\n<p class="muted">${content.gridMatches.matches} of ${content.gridMatches.tiles} test images, chosen with the run's seed ${content.config.training.seed}, have exactly their true labels predicted.</p>\n${picture(`data:image/jpeg;base64,${content.gridJpeg.toString('base64')}`, 'sanity grid of test images with true and predicted labels')}`,
    `<h2 id="suspects">Mislabel suspects</h2>\n${content.suspectsHtml ?? '<p class="muted">The audit was skipped.</p>'}`,
    `<h2 id="config">Configuration</h2>\n${configTable(content.config)}\n<details><summary>config.json</summary><pre>${escapeHtml(JSON.stringify(content.config, null, 2))}</pre></details>`,
  ];
  return htmlPage(`multitag report: ${name}`, sections.join('\n\n'));
}

/** Returns the callbacks that keep the run folder's pictures current during training: curves.png after every epoch. */
export function trainingReportCallbacks(runDir: string): TrainingCallback[] {
  return [new TrainingCurves(runDir)];
}

/**
 * Writes grid.png, report.html and audit.csv into a finished run folder. A failure is logged, not thrown, because
 * the trained model is saved already and `multitag report` can write the report again. Returns whether
 * the report was written.
 */
export async function writeTrainingReport(runDir: string, hooks: { log?: LogCallback; onProgress?: ProgressCallback } = {}): Promise<boolean> {
  const log = hooks.log ?? silentLog;
  try {
    const result = await writeRunReport({ runDir, gridPath: join(runDir, reportFiles.grid), auditCsvPath: join(runDir, reportFiles.auditCsv) }, hooks);
    log('info', `wrote ${result.path}, ${join(runDir, reportFiles.grid)} and ${join(runDir, reportFiles.auditCsv)}`);
    return true;
  } catch (error) {
    log('error', `could not write the report of ${runDir}: ${(error as Error).message}. The model is saved; run multitag report --model ${runDir} to try again.`);
    return false;
  }
}
