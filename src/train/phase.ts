// The epoch loop shared by both training phases: train an epoch, evaluate on the test split, hand the
// record to the callbacks, and stop when a callback requests it or the epoch budget is spent.
import type { LogCallback, ProgressCallback } from '../events.js';
import { computeMetrics } from '../metrics/index.js';
import type { ParameterSnapshot, TrainingCallback, TrainingContext } from './callbacks.js';
import type { EpochRecord, PhaseName } from './record.js';
import { runCritical } from '../files/criticalSection.js';

/** One phase's way of training and evaluating; the loop does everything else. */
export interface EpochRunner {
  readonly phase: PhaseName;
  /** Current learning rate, for the log. */
  learningRate(): number;
  /** Trains one epoch and returns the mean training cost. */
  trainEpoch(task: string, onProgress: ProgressCallback): Promise<number>;
  /** Computes logits [testCount, labels] on the test split. */
  testLogits(onProgress: ProgressCallback): Promise<Float32Array>;
  /** The live trainable parameters by name (not copies). */
  parameters(): ParameterSnapshot;
}

/** Inputs of {@link runPhase}. */
export interface PhaseLoop {
  runner: EpochRunner;
  callbacks: readonly TrainingCallback[];
  labels: readonly string[];
  testTargets: Uint8Array;
  /** Epochs this phase may run. */
  maxEpochs: number;
  /** Epoch number over the whole run reached before this phase (0 for a new run). */
  epochsBefore: number;
  /** Epochs of this phase already done (when resuming). */
  phaseEpochsDone: number;
  saveCheckpoint: () => Promise<void>;
  log: LogCallback;
  onProgress: ProgressCallback;
}

/** Outcome of a phase. */
export interface PhaseOutcome {
  /** Epoch number over the whole run after the last epoch of the phase. */
  lastEpoch: number;
  stopReason: string;
}

/** Copies every parameter array. */
export function copyParameters(parameters: ParameterSnapshot): ParameterSnapshot {
  return new Map([...parameters].map(([name, values]) => [name, values.slice()]));
}

/** Runs the epochs of one phase with its callbacks. */
export async function runPhase(loop: PhaseLoop): Promise<PhaseOutcome> {
  const { runner, callbacks, log } = loop;
  let stopReason = '';
  const context: TrainingContext = {
    requestStop: (reason) => {
      stopReason ||= reason;
    },
    snapshot: () => copyParameters(runner.parameters()),
    saveCheckpoint: loop.saveCheckpoint,
    log,
  };

  for (const callback of callbacks) {
    await callback.onPhaseStart?.(runner.phase, context);
  }

  let epoch = loop.epochsBefore;
  for (let phaseEpoch = loop.phaseEpochsDone + 1; phaseEpoch <= loop.maxEpochs && !stopReason; phaseEpoch++) {
    epoch += 1;
    const started = performance.now();
    const trainCost = await runner.trainEpoch(`epoch ${epoch}`, loop.onProgress);
    const logits = await runner.testLogits(loop.onProgress);
    // computeMetrics rejects the NaN or infinite logits of a diverged model. The record then carries NaN
    // metrics, so the callbacks (TerminateOnNonFinite first) stop the run with a message for the user.
    const metrics = logits.every(Number.isFinite) ? computeMetrics({ logits, targets: loop.testTargets, labels: loop.labels }) : undefined;
    const record: EpochRecord = {
      phase: runner.phase,
      epoch,
      phaseEpoch,
      trainCost,
      testCost: metrics?.bce ?? Number.NaN,
      testMicroF1: metrics?.microF1 ?? Number.NaN,
      testMacroF1: metrics?.macroF1 ?? Number.NaN,
      testMAP: metrics?.mAP ?? Number.NaN,
      learningRate: runner.learningRate(),
      seconds: (performance.now() - started) / 1000,
    };
    // The epoch's log line, log.csv, best model and checkpoint belong together, so an interrupt that
    // arrives after the log line waits until the checkpoint is written.
    await runCritical(async () => {
      for (const callback of callbacks) {
        await callback.onEpochEnd?.(record, context);
      }
    });
  }
  stopReason ||= `reached the limit of ${loop.maxEpochs} ${loop.maxEpochs === 1 ? 'epoch' : 'epochs'}`;
  log('info', `${runner.phase} phase ended: ${stopReason}`, { phase: runner.phase, epoch });

  for (const callback of callbacks) {
    await callback.onPhaseEnd?.(runner.phase, context);
  }
  return { lastEpoch: epoch, stopReason };
}
