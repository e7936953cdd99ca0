// Training curves: cost and test metrics per epoch, redrawn into the run folder after every epoch.
import { join } from 'node:path';
import type { ChartConfiguration, Plugin } from 'chart.js';
import { writeFileAtomic } from '../files/atomic.js';
import type { TrainingCallback, TrainingContext } from '../train/callbacks.js';
import type { EpochRecord } from '../train/record.js';
import { runFiles } from '../train/runFolder.js';
import { composePictures, drawChart, fontFamily, missingFontWarning, type PictureSize } from './chart.js';
import { readTrainingLog } from './runConfig.js';

/** File name of the curves picture inside a run folder. */
export const curvesFile = 'curves.png';

/** Size of one of the two stacked panels of the curves picture. */
export const defaultCurvePanelSize: PictureSize = { width: 900, height: 360 };

/** Draws a dashed vertical line where the phase changes, between the last epoch of one phase and the first of the next. */
const phaseBoundaries: Plugin<'line'> = {
  id: 'multitagPhaseBoundaries',
  afterDatasetsDraw(chart) {
    const records = (chart.options.plugins as { multitagPhaseBoundaries?: { records: readonly EpochRecord[] } }).multitagPhaseBoundaries?.records ?? [];
    const { ctx, chartArea, scales } = chart;
    for (let index = 1; index < records.length; index++) {
      if (records[index].phase === records[index - 1].phase) {
        continue;
      }
      const x = (scales.x.getPixelForValue(records[index - 1].epoch) + scales.x.getPixelForValue(records[index].epoch)) / 2;
      ctx.save();
      ctx.strokeStyle = '#6e7781';
      ctx.lineWidth = 1.5;
      ctx.setLineDash([6, 4]);
      ctx.beginPath();
      ctx.moveTo(x, chartArea.top);
      ctx.lineTo(x, chartArea.bottom);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.fillStyle = '#57606a';
      ctx.font = `12px ${fontFamily}`;
      ctx.textBaseline = 'top';
      // The caption goes right of the line, or left of it when it would run past the chart area.
      const caption = `${records[index].phase} from epoch ${records[index].epoch}`;
      const fitsRight = x + 4 + ctx.measureText(caption).width <= chartArea.right;
      ctx.textAlign = fitsRight ? 'left' : 'right';
      ctx.fillText(caption, fitsRight ? x + 4 : x - 4, chartArea.top + 4);
      ctx.restore();
    }
  },
};

function lineChart(title: string, yTitle: string, records: readonly EpochRecord[], series: { label: string; color: string; value: (record: EpochRecord) => number }[], yRange: { min?: number; max?: number }): ChartConfiguration<'line'> {
  return {
    type: 'line',
    data: {
      datasets: series.map(({ label, color, value }) => ({
        label,
        data: records.map((record) => ({ x: record.epoch, y: Number.isFinite(value(record)) ? value(record) : null })),
        borderColor: color,
        backgroundColor: color,
        borderWidth: 2,
        pointRadius: records.length > 60 ? 0 : 3,
        spanGaps: false,
        // Lets the points at the first and last epoch show whole instead of cut at the axis.
        clip: 6,
      })),
    },
    options: {
      layout: { padding: { right: 12 } },
      plugins: {
        title: { display: true, text: title, font: { size: 15, weight: 'bold' } },
        legend: { position: 'bottom' },
        // Read by the phaseBoundaries plugin.
        ...({ multitagPhaseBoundaries: { records } } as object),
      },
      scales: {
        x: {
          type: 'linear',
          title: { display: true, text: 'epoch' },
          min: 1,
          max: Math.max(2, records.length > 0 ? records[records.length - 1].epoch : 1),
          ticks: { precision: 0, maxTicksLimit: 20 },
        },
        y: { title: { display: true, text: yTitle }, ...yRange },
      },
    },
    plugins: [phaseBoundaries],
  };
}

/**
 * Draws the training curves as one PNG of two stacked panels: train and test cost per epoch, and test
 * micro-F1 and mAP per epoch. A dashed line marks each phase change.
 */
export async function drawTrainingCurves(records: readonly EpochRecord[], panel: PictureSize = defaultCurvePanelSize): Promise<Buffer> {
  const cost = lineChart('Cost per epoch (mean binary cross-entropy)', 'cost', records, [
    { label: 'train cost', color: '#0969da', value: (record) => record.trainCost },
    { label: 'test cost', color: '#cf222e', value: (record) => record.testCost },
  ], { min: 0 });
  const metrics = lineChart('Test metrics per epoch (threshold 0.5)', 'score', records, [
    { label: 'test micro-F1', color: '#1a7f37', value: (record) => record.testMicroF1 },
    { label: 'test mAP', color: '#8250df', value: (record) => record.testMAP },
  ], { min: 0, max: 1 });
  return composePictures([drawChart(cost, panel), drawChart(metrics, panel)], 1, panel);
}

/** Options of {@link TrainingCurves}. */
export interface TrainingCurvesOptions {
  /** Size of each of the two panels. The picture is twice as high. */
  panel?: PictureSize;
}

/**
 * A training callback that redraws curves.png in the run folder after every epoch. When training
 * resumes, the epochs before the first record it receives are read from log.csv, so the curves stay whole.
 */
export class TrainingCurves implements TrainingCallback {
  readonly records: EpochRecord[] = [];
  private warnedAboutFonts = false;
  private failedWrites = 0;

  constructor(
    private readonly runDir: string,
    private readonly options: TrainingCurvesOptions = {},
  ) {}

  /** Path of the picture this callback writes. */
  get path(): string {
    return join(this.runDir, curvesFile);
  }

  async onEpochEnd(record: EpochRecord, context: TrainingContext): Promise<void> {
    if (this.records.length === 0 && record.epoch > 1) {
      const earlier = await readTrainingLog(join(this.runDir, runFiles.log));
      this.records.push(...earlier.filter((previous) => previous.epoch < record.epoch));
    }
    this.records.push(record);

    const warning = missingFontWarning();
    if (warning && !this.warnedAboutFonts) {
      context.log('warn', warning);
      this.warnedAboutFonts = true;
    }

    // The picture only shows progress, so a failure to draw or write it is logged and training goes on.
    // A full disk still stops the run at its next checkpoint, with the hint to resume.
    try {
      await writeFileAtomic(this.path, await drawTrainingCurves(this.records, this.options.panel));
    } catch (error) {
      this.failedWrites += 1;
      const level = this.failedWrites === 1 ? 'warn' : 'debug';
      context.log(level, `could not write ${this.path} after epoch ${record.epoch}: ${(error as Error).message}. Training goes on; report.html, written by multitag report --model ${this.runDir}, also shows the curves.`);
    }
  }
}
