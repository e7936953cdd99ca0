// Micro-batching of model calls across concurrent requests, behind a bounded admission count.
import type { RgbImage } from '../image/decode.js';
import type { ModelOutputs } from '../train/predictor.js';

/** Limits of the batcher. */
export interface BatcherOptions {
  /** Maximum images in one model call. */
  maxBatchSize: number;
  /** Maximum time in milliseconds the first queued image waits for others to join its batch. */
  maxWaitMs: number;
  /** Maximum images admitted at once, each counted from admission (before decoding) to the end of its model call. */
  maxPending: number;
}

/** Error for a request that would exceed the admission limit. */
export class QueueFullError extends Error {
  constructor(readonly pending: number, readonly capacity: number, readonly requested: number) {
    super(`The server is busy: ${pending} of ${capacity} image slots are in use and this request needs ${requested}. Retry later.`);
    this.name = 'QueueFullError';
  }
}

/** Error for work submitted after close() started. */
export class BatcherClosedError extends Error {
  constructor() {
    super('The server is shutting down and accepts no new images.');
    this.name = 'BatcherClosedError';
  }
}

/** Probabilities and logits of one image, in the model's label order. */
export interface ImageOutputs {
  probabilities: Float32Array;
  logits: Float32Array;
}

/** Image slots reserved by one request. The first release() frees them and later calls do nothing. */
export interface Admission {
  readonly count: number;
  release(): void;
}

interface QueuedImage {
  view: RgbImage;
  resolve: (outputs: ImageOutputs) => void;
  reject: (error: unknown) => void;
}

/** Statistics of the model calls so far. */
export interface BatcherStats {
  modelCalls: number;
  images: number;
  largestBatch: number;
}

/**
 * Collects evaluation views from concurrent requests into model calls of up to maxBatchSize images. A
 * batch starts when it is full, when no other admitted image is still being read or decoded, when the
 * first image has waited maxWaitMs, or, while a model call runs, as soon as that call ends. Only one
 * model call runs at a time, because a call already uses every onnxruntime thread.
 */
export class InferenceBatcher {
  private readonly queue: QueuedImage[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private runningImages = 0;
  private admitted = 0;
  private closed = false;
  private readonly statistics: BatcherStats = { modelCalls: 0, images: 0, largestBatch: 0 };

  constructor(
    private readonly run: (views: RgbImage[]) => Promise<ModelOutputs>,
    private readonly labelCount: number,
    readonly options: BatcherOptions,
  ) {
    for (const [name, value] of Object.entries(options)) {
      if (!Number.isInteger(value) || value < (name === 'maxWaitMs' ? 0 : 1)) {
        throw new RangeError(`${name} must be a whole number of at least ${name === 'maxWaitMs' ? 0 : 1}, got ${value}.`);
      }
    }
  }

  /** Number of admitted images that have not finished. */
  get pending(): number {
    return this.admitted;
  }

  get stats(): BatcherStats {
    return { ...this.statistics };
  }

  /**
   * Reserves `count` image slots, or throws QueueFullError when they would exceed maxPending. The caller
   * must release the admission when its images are done, whether they succeeded or not.
   */
  admit(count: number): Admission {
    if (this.closed) {
      throw new BatcherClosedError();
    }
    if (this.admitted + count > this.options.maxPending) {
      throw new QueueFullError(this.admitted, this.options.maxPending, count);
    }
    this.admitted += count;
    let released = false;
    return {
      count,
      release: () => {
        if (!released) {
          released = true;
          this.admitted -= count;
          // Queued images may have been waiting for this request's images, which will not come.
          if (this.queue.length > 0) {
            this.schedule();
          }
        }
      },
    };
  }

  /** Queues one view for the next model call and resolves with its outputs. */
  predict(view: RgbImage): Promise<ImageOutputs> {
    if (this.closed) {
      return Promise.reject(new BatcherClosedError());
    }
    return new Promise<ImageOutputs>((resolve, reject) => {
      this.queue.push({ view, resolve, reject });
      this.schedule();
    });
  }

  /** Stops accepting images and waits until every queued image has been run. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.queue.length > 0 || this.running) {
      if (!this.running) {
        this.startBatch();
      }
      await this.running;
    }
  }

  private schedule(): void {
    if (this.running) {
      return;
    }
    // Admitted images that are neither queued nor running are still being read or decoded. When there
    // are none, no image is about to join, so waiting would only add latency.
    const preparing = this.admitted - this.queue.length - this.runningImages;
    if (this.queue.length >= this.options.maxBatchSize || this.options.maxWaitMs === 0 || preparing <= 0) {
      this.startBatch();
    } else if (!this.timer) {
      this.timer = setTimeout(() => this.startBatch(), this.options.maxWaitMs);
    }
  }

  private startBatch(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.running || this.queue.length === 0) {
      return;
    }
    const batch = this.queue.splice(0, this.options.maxBatchSize);
    this.runningImages = batch.length;
    this.running = this.runBatch(batch).finally(() => {
      this.running = undefined;
      this.runningImages = 0;
      // Images that arrived during the call have already waited, so they start without a timer.
      if (this.queue.length > 0) {
        this.startBatch();
      }
    });
  }

  private async runBatch(batch: QueuedImage[]): Promise<void> {
    const labels = this.labelCount;
    try {
      const outputs = await this.run(batch.map((item) => item.view));
      this.statistics.modelCalls++;
      this.statistics.images += batch.length;
      this.statistics.largestBatch = Math.max(this.statistics.largestBatch, batch.length);
      batch.forEach((item, row) => {
        item.resolve({
          probabilities: outputs.probabilities.slice(row * labels, (row + 1) * labels),
          logits: outputs.logits.slice(row * labels, (row + 1) * labels),
        });
      });
    } catch (error) {
      for (const item of batch) {
        item.reject(error);
      }
    }
  }
}
