import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { FeatureExtractor, resolveBackbone } from '../../src/backbone/backbone.js';
import { encodeModel } from '../../src/onnx/model.js';
import { buildInferenceModel, headBiasName, headWeightName, logitsOutput, probabilitiesOutput } from '../../src/train/inferenceModel.js';
import { seededRandom } from '../support/seededRandom.js';

// The compiled test runs from dist/test/train/, three levels below the repository root.
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const modelPath = path.resolve(repoRoot, '../shared/models/mobilenet_v2_1.0_224_imagenet.onnx');


test('inference model applies head and sigmoid', async () => {
  const backbone = await resolveBackbone({ source: modelPath, preprocessing: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] } });
  const extractor = await FeatureExtractor.create(backbone, { threads: 2 });
  const featureSize = extractor.featureSize;
  const labelCount = 3;
  const count = 3;
  const random = seededRandom(11);
  const weight = Float32Array.from({ length: labelCount * featureSize }, () => (random() * 2 - 1) * 0.05);
  const bias = Float32Array.from({ length: labelCount }, () => random() * 2 - 1);
  const images = Float32Array.from({ length: count * 3 * 224 * 224 }, () => random() * 2 - 1);

  const model = buildInferenceModel(backbone, new Map([[headWeightName, weight], [headBiasName, bias]]), labelCount, featureSize);
  const session = await ort.InferenceSession.create(encodeModel(model), { intraOpNumThreads: 2 });
  try {
    const features = await extractor.run(images, count);
    const outputs = await session.run({ [backbone.inputName]: new ort.Tensor('float32', images, [count, 3, 224, 224]) });
    const logits = outputs[logitsOutput].data as Float32Array;
    const probabilities = outputs[probabilitiesOutput].data as Float32Array;

    assert.deepEqual(outputs[logitsOutput].dims, [count, labelCount]);
    assert.deepEqual(outputs[probabilitiesOutput].dims, [count, labelCount]);
    for (let row = 0; row < count; row++) {
      for (let label = 0; label < labelCount; label++) {
        let expected = bias[label];
        for (let feature = 0; feature < featureSize; feature++) {
          expected += features[row * featureSize + feature] * weight[label * featureSize + feature];
        }
        const index = row * labelCount + label;
        assert.ok(Math.abs(logits[index] - expected) <= 1e-4, `logit [${row}, ${label}]: ${logits[index]} vs ${expected}`);
        const sigmoid = 1 / (1 + Math.exp(-logits[index]));
        assert.ok(Math.abs(probabilities[index] - sigmoid) <= 1e-6, `probability [${row}, ${label}]: ${probabilities[index]} vs ${sigmoid}`);
      }
    }
  } finally {
    await session.release();
    await extractor.release();
  }
});

test('inference model has a symbolic batch', async () => {
  const backbone = await resolveBackbone({ source: modelPath, preprocessing: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] } });
  const weight = new Float32Array(2 * 1280);
  const bias = Float32Array.from([0, 1]);

  const model = buildInferenceModel(backbone, new Map([[headWeightName, weight], [headBiasName, bias]]), 2, 1280);

  const graph = model.graph!;
  assert.equal(graph.input![0].type?.tensorType?.shape?.dim?.[0]?.dimParam, 'batch');
  assert.deepEqual(graph.output!.map((output) => output.name), [logitsOutput, probabilitiesOutput]);
  const initializerNames = new Set(graph.initializer!.map((tensor) => tensor.name));
  assert.ok(!initializerNames.has('conv52_w'), 'the ImageNet classifier is not part of the model');
});
