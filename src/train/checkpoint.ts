// The resumable checkpoint: trainable parameters, AdamW moments and the loop's state in one
// safetensors file.
import { readSafetensors, writeSafetensors, type TensorEntry } from '../files/safetensors.js';
import type { AdamW } from './adamw.js';
import type { ParameterSnapshot, TrackerState } from './callbacks.js';
import type { EpochRunner } from './phase.js';
import type { PhaseName } from './record.js';

/** Loop state stored beside the tensors. */
export interface CheckpointState {
  /** Epochs finished over the whole run. */
  epoch: number;
  phase: PhaseName;
  /** Epochs of the adaptation phase; set once the fine-tuning phase has started. */
  adaptationEpochs?: number;
  optimizerStep: number;
  earlyStopping: TrackerState;
  saveBest: TrackerState;
  random: { shuffle: number[]; augment: number[] };
}

const firstMomentPrefix = 'adamw.first/';
const secondMomentPrefix = 'adamw.second/';
const bestPrefix = 'best/';

/**
 * Writes the checkpoint atomically. It also stores the best parameters so far, because best.safetensors
 * may already hold a later epoch's parameters when a run is killed between the two writes.
 */
export async function writeCheckpoint(path: string, runner: EpochRunner, optimizer: AdamW, state: CheckpointState, best: ParameterSnapshot | undefined): Promise<void> {
  const tensors = new Map<string, TensorEntry>();
  for (const [name, data] of runner.parameters()) {
    tensors.set(name, { shape: [data.length], data });
  }
  for (const [name, data] of best ?? []) {
    tensors.set(`${bestPrefix}${name}`, { shape: [data.length], data });
  }
  for (const [name, moments] of optimizer.moments) {
    tensors.set(`${firstMomentPrefix}${name}`, { shape: [moments.first.length], data: moments.first });
    tensors.set(`${secondMomentPrefix}${name}`, { shape: [moments.second.length], data: moments.second });
  }
  await writeSafetensors(path, { tensors, metadata: { format: 'multitag-checkpoint', state: JSON.stringify(state) } });
}

/** A checkpoint read back: parameters, optimizer moments and state. */
export interface Checkpoint {
  parameters: ParameterSnapshot;
  /** Best parameters so far; empty before the first improvement. */
  best: ParameterSnapshot;
  firstMoments: Map<string, Float32Array>;
  secondMoments: Map<string, Float32Array>;
  state: CheckpointState;
}

/** Reads a checkpoint written by {@link writeCheckpoint}. */
export async function readCheckpoint(path: string): Promise<Checkpoint> {
  const content = await readSafetensors(path);
  const parameters: ParameterSnapshot = new Map();
  const best: ParameterSnapshot = new Map();
  const firstMoments = new Map<string, Float32Array>();
  const secondMoments = new Map<string, Float32Array>();
  for (const [name, tensor] of content.tensors) {
    if (name.startsWith(firstMomentPrefix)) {
      firstMoments.set(name.slice(firstMomentPrefix.length), tensor.data);
    } else if (name.startsWith(secondMomentPrefix)) {
      secondMoments.set(name.slice(secondMomentPrefix.length), tensor.data);
    } else if (name.startsWith(bestPrefix)) {
      best.set(name.slice(bestPrefix.length), tensor.data);
    } else {
      parameters.set(name, tensor.data);
    }
  }
  return { parameters, best, firstMoments, secondMoments, state: JSON.parse(content.metadata.state ?? '{}') as CheckpointState };
}
