// AdamW (Loshchilov and Hutter, "Decoupled Weight Decay Regularization", 2019) over named float32
// parameters, with the same update order as torch.optim.AdamW.

/** Hyperparameters of AdamW. */
export interface AdamWSettings {
  /** Learning rate. */
  learningRate: number;
  /** Decoupled weight decay factor; each step multiplies parameters by (1 - learningRate * weightDecay). */
  weightDecay: number;
  beta1: number;
  beta2: number;
  epsilon: number;
}

/** PyTorch's AdamW defaults, except the learning rate which the caller sets. */
export const defaultAdamW: Omit<AdamWSettings, 'learningRate'> = { weightDecay: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 };

/** First and second moment estimates of one parameter. */
export interface Moments {
  first: Float32Array;
  second: Float32Array;
}

/** AdamW state over named parameters. Parameters are updated in place. */
export class AdamW {
  /** Number of updates applied so far. */
  step = 0;
  /** Moment estimates by parameter name. */
  readonly moments = new Map<string, Moments>();

  constructor(public settings: AdamWSettings) {}

  /** Applies one update to each named parameter from its gradient, and advances the step count. */
  update(parameters: ReadonlyMap<string, Float32Array>, gradients: ReadonlyMap<string, Float32Array>): void {
    this.step += 1;
    const { learningRate, weightDecay, beta1, beta2, epsilon } = this.settings;
    const firstCorrection = 1 - beta1 ** this.step;
    const secondCorrection = 1 - beta2 ** this.step;
    const stepSize = learningRate / firstCorrection;
    const decay = 1 - learningRate * weightDecay;

    for (const [name, parameter] of parameters) {
      const gradient = gradients.get(name);
      if (!gradient) {
        throw new Error(`AdamW update has no gradient for parameter ${name}`);
      }
      if (gradient.length !== parameter.length) {
        throw new Error(`AdamW gradient of ${name} has ${gradient.length} values, the parameter has ${parameter.length}`);
      }
      const moments = this.momentsOf(name, parameter.length);
      const { first, second } = moments;

      for (let index = 0; index < parameter.length; index++) {
        const value = gradient[index];
        first[index] = beta1 * first[index] + (1 - beta1) * value;
        second[index] = beta2 * second[index] + (1 - beta2) * value * value;
        const denominator = Math.sqrt(second[index] / secondCorrection) + epsilon;
        parameter[index] = parameter[index] * decay - (stepSize * first[index]) / denominator;
      }
    }
  }

  /** Drops all moments and resets the step count, as a fresh optimizer for a new phase. */
  reset(settings: AdamWSettings): void {
    this.settings = settings;
    this.step = 0;
    this.moments.clear();
  }

  /** Sets the step count and moment estimates, as read from a checkpoint. */
  restore(step: number, first: ReadonlyMap<string, Float32Array>, second: ReadonlyMap<string, Float32Array>): void {
    this.step = step;
    this.moments.clear();
    for (const [name, values] of first) {
      const secondValues = second.get(name);
      if (!secondValues || secondValues.length !== values.length) {
        throw new Error(`checkpoint has no matching second moment for parameter ${name}`);
      }
      this.moments.set(name, { first: values.slice(), second: secondValues.slice() });
    }
  }

  private momentsOf(name: string, length: number): Moments {
    let moments = this.moments.get(name);
    if (!moments) {
      moments = { first: new Float32Array(length), second: new Float32Array(length) };
      this.moments.set(name, moments);
    }
    return moments;
  }
}
