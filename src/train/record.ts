// The per-epoch record that the training loop hands to callbacks and writes to log.csv.

/** Name of a training phase: "adaptation" trains the head on a frozen backbone, "finetuning" also the backbone. */
export type PhaseName = 'adaptation' | 'finetuning';

/** Metrics of one finished epoch. Costs are mean binary cross-entropy. */
export interface EpochRecord {
  phase: PhaseName;
  /** Epoch number over the whole run, from 1. */
  epoch: number;
  /** Epoch number within the phase, from 1. */
  phaseEpoch: number;
  trainCost: number;
  testCost: number;
  testMicroF1: number;
  testMacroF1: number;
  testMAP: number;
  learningRate: number;
  /** Wall time of the epoch including evaluation, in seconds. */
  seconds: number;
}

/** Names of the record fields that can be monitored for early stopping and best-model tracking. */
export type MonitoredMetric = 'testCost' | 'testMicroF1' | 'testMacroF1' | 'testMAP' | 'trainCost';

export const monitoredMetrics: readonly MonitoredMetric[] = ['testCost', 'testMicroF1', 'testMacroF1', 'testMAP', 'trainCost'];

/** Columns of log.csv, in order. */
export const recordColumns: readonly (keyof EpochRecord)[] = [
  'epoch',
  'phase',
  'phaseEpoch',
  'trainCost',
  'testCost',
  'testMicroF1',
  'testMacroF1',
  'testMAP',
  'learningRate',
  'seconds',
];

/** Formats records as CSV with a header row. */
export function recordsToCsv(records: readonly EpochRecord[]): string {
  const lines = [recordColumns.join(',')];
  for (const record of records) {
    lines.push(recordColumns.map((column) => formatCell(record[column])).join(','));
  }
  return `${lines.join('\n')}\n`;
}

function formatCell(value: string | number): string {
  if (typeof value === 'string') {
    return value;
  }
  return Number.isInteger(value) ? String(value) : value.toPrecision(6);
}

/** Parses log.csv back into records; used when resuming a run. */
export function csvToRecords(text: string): EpochRecord[] {
  const lines = text.split(/\r?\n/).filter((line) => line.trim() !== '');
  const header = lines.shift()?.split(',') ?? [];
  return lines.map((line) => {
    const cells = line.split(',');
    const record: Record<string, string | number> = {};
    header.forEach((column, index) => {
      record[column] = column === 'phase' ? cells[index] : Number(cells[index]);
    });
    return record as unknown as EpochRecord;
  });
}
