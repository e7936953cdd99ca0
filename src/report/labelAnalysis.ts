// Per-label analysis: targets in the model's label order, precision-recall curves and label co-occurrence.
import type { ChartConfiguration } from 'chart.js';
import type { DatasetSplit } from '../data/dataset.js';
import { labelMatrix } from '../data/dataset.js';
import { precisionRecallCurve, type LabelMetrics } from '../metrics/index.js';
import { LabelMismatchError } from '../train/evaluate.js';
import { composePictures, drawChart, type PictureSize } from './chart.js';

/** Size of one label's panel in the precision-recall picture. */
export const precisionRecallPanelSize: PictureSize = { width: 420, height: 340 };

/**
 * Returns the 0/1 targets of a split in the model's label order, row-major [items, labels]. Throws
 * LabelMismatchError when the split has no column for one of the labels.
 */
export function targetsInLabelOrder(split: DatasetSplit, labels: readonly string[]): Uint8Array {
  const columns = labels.map((label) => split.labels.indexOf(label));
  if (columns.some((column) => column < 0)) {
    throw new LabelMismatchError(
      `${split.csvPath} has the labels ${split.labels.join(', ')} but the model predicts ${labels.join(', ')}. Use a CSV with a column for every label of the model.`,
    );
  }
  const source = labelMatrix(split);
  const targets = new Uint8Array(split.items.length * labels.length);
  for (let row = 0; row < split.items.length; row++) {
    columns.forEach((column, label) => {
      targets[row * labels.length + label] = source[row * split.labels.length + column];
    });
  }
  return targets;
}

/** Turns probabilities into 0/1 predictions, positive when probability >= the label's threshold. */
export function predictionMatrix(probabilities: Float32Array, thresholds: readonly number[]): Uint8Array {
  const labelCount = thresholds.length;
  const predictions = new Uint8Array(probabilities.length);
  for (let index = 0; index < probabilities.length; index++) {
    predictions[index] = probabilities[index] >= thresholds[index % labelCount] ? 1 : 0;
  }
  return predictions;
}

/**
 * Counts label co-occurrence in a 0/1 matrix [items, labelCount]: entry [a][b] is the number of items
 * with both labels a and b, so the diagonal contains each label's count.
 */
export function cooccurrenceMatrix(matrix: Uint8Array, labelCount: number): number[][] {
  const counts = Array.from({ length: labelCount }, () => new Array<number>(labelCount).fill(0));
  for (let offset = 0; offset < matrix.length; offset += labelCount) {
    for (let a = 0; a < labelCount; a++) {
      if (matrix[offset + a] !== 1) {
        continue;
      }
      for (let b = 0; b < labelCount; b++) {
        counts[a][b] += matrix[offset + b];
      }
    }
  }
  return counts;
}

/** Returns column `label` of a row-major matrix with `labelCount` columns. */
export function labelColumn<T extends Float32Array | Uint8Array>(matrix: T, labelCount: number, label: number): T {
  const column = new (matrix.constructor as new (length: number) => T)(matrix.length / labelCount);
  for (let row = 0; row < column.length; row++) {
    column[row] = matrix[row * labelCount + label];
  }
  return column;
}

function precisionRecallChart(label: string, probabilities: Float32Array, targets: Uint8Array, metrics: LabelMetrics, threshold: number): ChartConfiguration<'line'> {
  const curve = precisionRecallCurve(probabilities, targets);
  // The curve starts at recall 0 with the precision of the top-scored group, as the average precision sums it.
  const points = [{ x: 0, y: curve.precision[0] ?? 0 }, ...curve.recall.map((recall, index) => ({ x: recall, y: curve.precision[index] }))];
  const apText = Number.isNaN(metrics.ap) ? 'AP n/a' : `AP ${metrics.ap.toFixed(3)}`;
  return {
    type: 'line',
    data: {
      datasets: [
        {
          label: 'precision-recall curve',
          data: points,
          stepped: 'before',
          borderColor: '#0969da',
          backgroundColor: '#0969da',
          borderWidth: 2,
          pointRadius: 0,
        },
        {
          label: `threshold ${threshold.toFixed(2)}`,
          data: [{ x: metrics.recall, y: metrics.precision }],
          borderColor: '#cf222e',
          backgroundColor: '#cf222e',
          pointRadius: 6,
          pointStyle: 'rectRot',
          showLine: false,
        },
      ],
    },
    options: {
      layout: { padding: { right: 10 } },
      plugins: {
        title: { display: true, text: `${label}: ${apText}, ${metrics.support} positives`, font: { size: 14, weight: 'bold' } },
        legend: { position: 'bottom' },
      },
      scales: {
        x: { type: 'linear', min: 0, max: 1, title: { display: true, text: 'recall' } },
        y: { min: 0, max: 1.02, title: { display: true, text: 'precision' }, ticks: { stepSize: 0.2 } },
      },
    },
  };
}

/**
 * Draws one precision-recall curve per label, three panels per row, each with a marker at the
 * label's decision threshold, and encodes the picture as PNG.
 */
export async function drawPrecisionRecallCurves(
  probabilities: Float32Array,
  targets: Uint8Array,
  labels: readonly string[],
  perLabel: Readonly<Record<string, LabelMetrics>>,
  thresholds: readonly number[],
): Promise<Buffer> {
  const panels = labels.map((label, index) =>
    drawChart(
      precisionRecallChart(label, labelColumn(probabilities, labels.length, index), labelColumn(targets, labels.length, index), perLabel[label], thresholds[index]),
      precisionRecallPanelSize,
    ),
  );
  return composePictures(panels, Math.min(3, labels.length), precisionRecallPanelSize);
}
