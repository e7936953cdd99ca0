// Training callbacks, each with one job: log an epoch, track the best value of a metric, stop early,
// save the best model, write periodic checkpoints, write the CSV log, stop on a non-finite cost.
import type { LogCallback } from '../events.js';
import { recordsToCsv, type EpochRecord, type MonitoredMetric, type PhaseName } from './record.js';
import { writeFileAtomic } from '../files/atomic.js';

/** Trainable parameters by name; a copy taken at one moment of training. */
export type ParameterSnapshot = Map<string, Float32Array>;

/** Operations the training loop offers its callbacks. */
export interface TrainingContext {
  /** Asks the loop to stop after this epoch; `reason` is logged. */
  requestStop(reason: string): void;
  /** Copies the current trainable parameters. */
  snapshot(): ParameterSnapshot;
  /** Writes the full training state (parameters, optimizer, epoch, callbacks, random state). */
  saveCheckpoint(): Promise<void>;
  log: LogCallback;
}

/** A training callback. Every method is optional. */
export interface TrainingCallback {
  onPhaseStart?(phase: PhaseName, context: TrainingContext): void | Promise<void>;
  onEpochEnd?(record: EpochRecord, context: TrainingContext): void | Promise<void>;
  onPhaseEnd?(phase: PhaseName, context: TrainingContext): void | Promise<void>;
}

/** Whether a smaller or a larger value of a metric is better. */
export type Direction = 'min' | 'max';

/** Derives the direction from a metric's name: costs, losses and error rates are minimised. */
export function directionOf(metric: string): Direction {
  return /cost|loss|bce|hamming|error/i.test(metric) ? 'min' : 'max';
}

/** Serialisable state of a tracker. */
export interface TrackerState {
  best: number;
  bestEpoch: number;
  epochsWithoutImprovement: number;
}

/** Shared base of callbacks that follow the best value of one monitored metric. */
export abstract class TrackerCallback {
  readonly direction: Direction;
  best: number;
  bestEpoch = 0;
  epochsWithoutImprovement = 0;

  constructor(
    readonly monitor: MonitoredMetric,
    /** Minimum change that counts as an improvement. */
    readonly minDelta = 0,
  ) {
    this.direction = directionOf(monitor);
    this.best = this.direction === 'min' ? Infinity : -Infinity;
  }

  /** Compares the record's value with the best so far, updates the state, and returns whether it improved. */
  protected track(record: EpochRecord): boolean {
    const value = record[this.monitor];
    const improved = this.direction === 'min' ? value < this.best - this.minDelta : value > this.best + this.minDelta;
    if (improved) {
      this.best = value;
      this.bestEpoch = record.epoch;
      this.epochsWithoutImprovement = 0;
    } else {
      this.epochsWithoutImprovement += 1;
    }
    return improved;
  }

  getState(): TrackerState {
    return { best: this.best, bestEpoch: this.bestEpoch, epochsWithoutImprovement: this.epochsWithoutImprovement };
  }

  setState(state: TrackerState): void {
    this.best = state.best;
    this.bestEpoch = state.bestEpoch;
    this.epochsWithoutImprovement = state.epochsWithoutImprovement;
  }
}

/** Stops a phase when the monitored metric has not improved for `patience` epochs. */
export class EarlyStopping extends TrackerCallback {
  constructor(
    monitor: MonitoredMetric,
    public patience: number,
    minDelta = 0,
  ) {
    super(monitor, minDelta);
  }

  /** Restarts the patience count with a new patience, keeping the best value seen so far. */
  resetPatience(patience: number): void {
    this.patience = patience;
    this.epochsWithoutImprovement = 0;
  }

  onEpochEnd(record: EpochRecord, context: TrainingContext): void {
    this.track(record);
    if (this.epochsWithoutImprovement >= this.patience) {
      context.requestStop(`${this.monitor} has not improved on ${this.best.toPrecision(4)} (epoch ${this.bestEpoch}) for ${this.patience} epochs`);
    }
  }
}

/** Keeps the parameters of the best epoch by the monitored metric and hands them to `save` whenever they improve. */
export class SaveBest extends TrackerCallback {
  /** Parameters of the best epoch so far. */
  bestParameters: ParameterSnapshot | undefined;

  constructor(
    monitor: MonitoredMetric,
    private readonly save: (parameters: ParameterSnapshot, record: EpochRecord) => Promise<void>,
  ) {
    super(monitor);
  }

  async onEpochEnd(record: EpochRecord, context: TrainingContext): Promise<void> {
    if (!this.track(record)) {
      return;
    }
    this.bestParameters = context.snapshot();
    await this.save(this.bestParameters, record);
    context.log('info', `saved best model: ${this.monitor} ${record[this.monitor].toPrecision(4)} at epoch ${record.epoch}`, { epoch: record.epoch });
  }
}

/** Writes a checkpoint every `every` epochs. */
export class PeriodicCheckpoint implements TrainingCallback {
  constructor(private readonly every: number) {}

  async onEpochEnd(record: EpochRecord, context: TrainingContext): Promise<void> {
    if (record.epoch % this.every === 0) {
      await context.saveCheckpoint();
    }
  }
}

/** Rewrites the CSV log with every epoch so far, atomically. */
export class CsvLogger implements TrainingCallback {
  constructor(
    private readonly path: string,
    readonly records: EpochRecord[] = [],
  ) {}

  async onEpochEnd(record: EpochRecord): Promise<void> {
    this.records.push(record);
    await writeFileAtomic(this.path, recordsToCsv(this.records));
  }
}

/** Logs one line per epoch. */
export class EpochLogger implements TrainingCallback {
  onEpochEnd(record: EpochRecord, context: TrainingContext): void {
    const message =
      `epoch ${record.epoch} (${record.phase} ${record.phaseEpoch}): train cost ${record.trainCost.toFixed(4)}, ` +
      `test cost ${record.testCost.toFixed(4)}, test micro-F1 ${record.testMicroF1.toFixed(4)}, ` +
      `test mAP ${record.testMAP.toFixed(4)}, ${record.seconds.toFixed(1)} s`;
    context.log('info', message, { ...record });
  }
}

/** Error raised when the training cost stops being a finite number. */
export class NonFiniteCostError extends Error {
  constructor(record: EpochRecord) {
    const cost = Number.isFinite(record.trainCost) ? 'test' : 'train';
    // Every earlier epoch passed this check, and the first one always counts as the best so far.
    const earlier = record.epoch === 2 ? 'epoch 1' : `epochs 1 to ${record.epoch - 1}`;
    const keptFiles =
      record.epoch > 1
        ? `The run folder keeps the best model of ${earlier} and the last checkpoint written before epoch ${record.epoch}, if any.`
        : 'No model was saved, because it was the first epoch.';
    const option = record.phase === 'adaptation' ? '--lr' : '--finetune-lr';
    super(
      `Training diverged: the ${cost} cost of epoch ${record.epoch} (${record.phase}) is not a finite number. ${keptFiles} ` +
        `Lower the learning rate (${option}, now ${record.learningRate}) and train again into a new --out folder.`,
    );
    this.name = 'NonFiniteCostError';
  }
}

/** Throws {@link NonFiniteCostError} as soon as a cost is NaN or infinite, before anything is saved. */
export class TerminateOnNonFinite implements TrainingCallback {
  onEpochEnd(record: EpochRecord): void {
    if (!Number.isFinite(record.trainCost) || !Number.isFinite(record.testCost)) {
      throw new NonFiniteCostError(record);
    }
  }
}
