// Text tables and JSON shapes that the commands print on stdout.
import type { MultiLabelMetrics } from '../metrics/index.js';

/** The JSON object `evaluate --json` prints. */
export interface MetricsJson {
  microF1: number;
  macroF1: number;
  mAP: number;
  exactMatch: number;
  hammingLoss: number;
  bce: number;
  perLabel: Record<string, { precision: number; recall: number; f1: number; ap: number; support: number }>;
}

/** Selects the fields of the metrics JSON. */
export function metricsJson(metrics: MultiLabelMetrics): MetricsJson {
  const perLabel: MetricsJson['perLabel'] = {};
  for (const [label, values] of Object.entries(metrics.perLabel)) {
    perLabel[label] = { precision: values.precision, recall: values.recall, f1: values.f1, ap: values.ap, support: values.support };
  }
  return {
    microF1: metrics.microF1,
    macroF1: metrics.macroF1,
    mAP: metrics.mAP,
    exactMatch: metrics.exactMatch,
    hammingLoss: metrics.hammingLoss,
    bce: metrics.bce,
    perLabel,
  };
}

/** Formats the summary and per-label metrics as an aligned text table. */
export function metricsTable(metrics: MultiLabelMetrics, title: string): string {
  const summary = [
    ['micro-F1', metrics.microF1],
    ['macro-F1', metrics.macroF1],
    ['mAP', metrics.mAP],
    ['exact match', metrics.exactMatch],
    ['hamming loss', metrics.hammingLoss],
    ['BCE', metrics.bce],
  ] as const;
  const lines = [title, ...summary.map(([name, value]) => `  ${name.padEnd(13)} ${formatValue(value)}`), ''];

  const labels = Object.keys(metrics.perLabel);
  const width = Math.max(5, ...labels.map((label) => label.length));
  lines.push(`  ${'label'.padEnd(width)}  precision  recall  F1      AP      support`);
  for (const label of labels) {
    const values = metrics.perLabel[label];
    lines.push(`  ${label.padEnd(width)}  ${formatValue(values.precision).padEnd(9)}  ${formatValue(values.recall).padEnd(6)}  ${formatValue(values.f1).padEnd(6)}  ${formatValue(values.ap).padEnd(6)}  ${values.support}`);
  }
  return `${lines.join('\n')}\n`;
}

function formatValue(value: number): string {
  return Number.isNaN(value) ? 'n/a' : value.toFixed(4);
}

/** Quotes a CSV cell when it contains a comma, quote or line break. */
export function csvCell(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}
