// Runs an in-memory inference model on evaluation views and returns its logits.
import * as ort from 'onnxruntime-node';
import { inferenceSessionOptions } from '../backbone/backbone.js';
import type { RgbImage } from '../image/decode.js';
import { encodeModel, type ModelProto } from '../onnx/model.js';
import { normalizeBatch, type ImageSettings } from './images.js';
import { logitsOutput } from './inferenceModel.js';

/** Computes logits [views, labels] of an inference model built by buildInferenceModel. */
export async function runInferenceModel(model: ModelProto, inputName: string, views: readonly RgbImage[], images: ImageSettings, threads?: number): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(encodeModel(model), inferenceSessionOptions({ threads }));
  try {
    const size = images.inputSize;
    const chunks: Float32Array[] = [];
    const batchSize = 32;
    for (let start = 0; start < views.length; start += batchSize) {
      const batch = views.slice(start, start + batchSize);
      const input = new ort.Tensor('float32', normalizeBatch(batch, images), [batch.length, 3, size, size]);
      const outputs = await session.run({ [inputName]: input });
      chunks.push((outputs[logitsOutput].data as Float32Array).slice());
    }
    const logits = new Float32Array(chunks.reduce((total, chunk) => total + chunk.length, 0));
    let offset = 0;
    for (const chunk of chunks) {
      logits.set(chunk, offset);
      offset += chunk.length;
    }
    return logits;
  } finally {
    await session.release();
  }
}
