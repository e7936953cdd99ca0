import assert from 'node:assert/strict';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { type ModelProto, readModel, tensorToFloat32 } from '../../src/onnx/model.js';
import { appendLinearHead, cutAtTensor, setInputShape } from '../../src/onnx/graph.js';
import { buildTrainingGraph } from '../../src/autodiff/trainingGraph.js';
import { checkGradients, createSession, describeChecks, failedChecks, initializerValues, randomArray, seededRandom } from './helpers.js';

const repoRoot = path.resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const modelPath = path.resolve(repoRoot, '../shared/models/mobilenet_v2_1.0_224_imagenet.onnx');

const BATCH = 2;
const SIZE = 64;
const LABELS = 5;

let forward: ModelProto;
let images: ort.Tensor;
let targets: Float32Array;
let allParameters: string[];

function convolutionParameters(model: ModelProto): string[] {
  return (model.graph?.initializer ?? []).map((tensor) => tensor.name ?? '').filter((name) => /^conv\d+_[wb]$|^head_/.test(name));
}

before(async () => {
  const random = seededRandom(42);
  const backbone = setInputShape(await readModel(modelPath), 'input', ['N', 3, SIZE, SIZE]);
  forward = appendLinearHead(cutAtTensor(backbone, 'features'), {
    featuresName: 'features',
    weight: randomArray(random, LABELS * 1280, -0.1, 0.1),
    bias: randomArray(random, LABELS, -0.1, 0.1),
  });
  images = new ort.Tensor('float32', randomArray(random, BATCH * 3 * SIZE * SIZE), [BATCH, 3, SIZE, SIZE]);
  targets = Float32Array.from({ length: BATCH * LABELS }, () => (random() < 0.5 ? 1 : 0));
  allParameters = convolutionParameters(forward);
});

function feedsFor(names: readonly string[], values: ReadonlyMap<string, { dims: number[]; values: Float32Array }>): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = { input: images, targets: new ort.Tensor('float32', targets, [BATCH, LABELS]) };
  for (const name of names) {
    const entry = values.get(name)!;
    feeds[name] = new ort.Tensor('float32', entry.values, entry.dims);
  }
  return feeds;
}

describe('MobileNetV2 with a linear head', () => {
  test('forward graph cut at features has one Gemm head', () => {
    const outputs = (forward.graph?.output ?? []).map((output) => output.name);
    assert.deepEqual(outputs, ['logits']);
    const opTypes = new Set((forward.graph?.node ?? []).map((node) => node.opType));
    assert.ok(opTypes.has('Gemm'));
    assert.ok(!(forward.graph?.node ?? []).some((node) => node.output?.includes('conv52_out')), 'the 1001-class classifier is cut away');
  });

  test('gradients match finite differences at several depths', async () => {
    // A step moves many ReLU6 inputs of the early layers across a kink, which biases the difference
    // quotient, so the early layers take a smaller step (float32 noise grows as the step shrinks).
    const groups = [
      { step: 1e-4, parameters: ['conv0_w', 'conv1_w', 'conv4_w'] },
      { step: 1e-3, parameters: ['conv2_w', 'conv20_w', 'conv20_b', 'conv43_w', 'conv51_w', 'head_weight', 'head_bias'] },
    ];
    for (const group of groups) {
      const { checks } = await checkGradients(forward, 'input', 'logits', allParameters, images, targets, {
        step: group.step,
        largestEntries: 3,
        randomEntries: 2,
        seed: 3,
        checkedParameters: group.parameters,
      }, BATCH);

      for (const parameter of group.parameters) {
        const own = checks.filter((check) => check.parameter === parameter);
        assert.ok(own.length >= 3, `${parameter} has ${own.length} checks`);
        const largest = Math.max(...own.map((check) => Math.abs(check.analytic)));
        assert.ok(largest > 1e-2, `${parameter}: gradients are all near zero (largest ${largest})`);
        const failed = failedChecks(own, 3e-2, 2e-2 * largest);
        assert.deepEqual(failed, [], `${parameter} gradient mismatches:\n${describeChecks(failed)}`);
      }
    }
  });

  test('one SGD step lowers the loss', async () => {
    const training = buildTrainingGraph({ forward, inputName: 'input', logitsName: 'logits', trainable: allParameters, batchSize: BATCH });
    const session = await createSession(training.model);
    const values = initializerValues(forward, allParameters);

    const first = await session.run(feedsFor(training.parameterNames, values));
    const firstLoss = (first.loss.data as Float32Array)[0];
    const learningRate = 0.05;
    const updated = new Map<string, { dims: number[]; values: Float32Array }>();
    training.parameterNames.forEach((name, index) => {
      const gradient = first[training.gradientNames[index]].data as Float32Array;
      const entry = values.get(name)!;
      updated.set(name, { dims: entry.dims, values: entry.values.map((value, position) => value - learningRate * gradient[position]) });
    });

    const second = await session.run(feedsFor(training.parameterNames, updated));
    const secondLoss = (second.loss.data as Float32Array)[0];
    assert.ok(secondLoss < firstLoss, `loss went from ${firstLoss} to ${secondLoss}`);
  });

  test('frozen layers keep their weights and get no backward nodes', async () => {
    // Train only the last inverted-residual block (conv49 to conv51) and the head.
    const trainable = allParameters.filter((name) => /^conv(49|50|51)_|^head_/.test(name));
    const frozen = allParameters.filter((name) => !trainable.includes(name));
    const training = buildTrainingGraph({ forward, inputName: 'input', logitsName: 'logits', trainable, batchSize: BATCH });
    const graph = training.model.graph!;

    const outputNames = (graph.output ?? []).map((output) => output.name);
    assert.equal(outputNames.length, 2 + trainable.length);
    for (const name of frozen) {
      assert.ok(!outputNames.some((output) => output?.startsWith(`${name}_grad`)), `${name} has no gradient output`);
    }

    const originalConv0 = tensorToFloat32((forward.graph?.initializer ?? []).find((tensor) => tensor.name === 'conv0_w')!);
    const keptConv0 = (graph.initializer ?? []).find((tensor) => tensor.name === 'conv0_w');
    assert.ok(keptConv0, 'frozen conv0_w stays an initializer');
    assert.deepEqual(tensorToFloat32(keptConv0), originalConv0);
    assert.ok(!(graph.input ?? []).some((input) => input.name === 'conv0_w'), 'frozen conv0_w is not a graph input');

    // Each frozen weight feeds only its forward Conv: no input gradient runs through frozen layers.
    for (const name of frozen) {
      const consumers = (graph.node ?? []).filter((node) => node.input?.includes(name));
      assert.equal(consumers.length, 1, `${name} has consumers ${consumers.map((node) => node.name).join(', ')}`);
    }
    const full = buildTrainingGraph({ forward, inputName: 'input', logitsName: 'logits', trainable: allParameters, batchSize: BATCH });
    assert.ok((graph.node ?? []).length < (full.model.graph?.node ?? []).length / 2, 'the partial graph is much smaller than the full one');

    const session = await createSession(training.model);
    const results = await session.run(feedsFor(training.parameterNames, initializerValues(forward, trainable)));
    assert.ok(Number.isFinite((results.loss.data as Float32Array)[0]));
  });

  test('first layer gets no input gradient in full training', () => {
    const training = buildTrainingGraph({ forward, inputName: 'input', logitsName: 'logits', trainable: allParameters, batchSize: BATCH });
    const consumers = (training.model.graph?.node ?? []).filter((node) => node.input?.includes('conv0_w'));
    assert.deepEqual(consumers.map((node) => node.opType), ['Conv']);
  });

  test('dynamic batch graph matches the static one', async () => {
    const values = initializerValues(forward, allParameters);
    const results = [];
    for (const batchSize of [BATCH, undefined]) {
      const training = buildTrainingGraph({ forward, inputName: 'input', logitsName: 'logits', trainable: allParameters, batchSize });
      const session = await createSession(training.model);
      results.push({ training, outputs: await session.run(feedsFor(training.parameterNames, values)) });
    }

    const [fixed, dynamic] = results;
    const fixedLoss = (fixed.outputs.loss.data as Float32Array)[0];
    const dynamicLoss = (dynamic.outputs.loss.data as Float32Array)[0];
    assert.ok(Math.abs(dynamicLoss - fixedLoss) <= 1e-6 * fixedLoss, `loss ${dynamicLoss} against ${fixedLoss}`);
    fixed.training.gradientNames.forEach((name, index) => {
      const expected = fixed.outputs[name].data as Float32Array;
      const actual = dynamic.outputs[dynamic.training.gradientNames[index]].data as Float32Array;
      let scale = 0;
      let worst = 0;
      expected.forEach((value, position) => {
        scale = Math.max(scale, Math.abs(value));
        worst = Math.max(worst, Math.abs(actual[position] - value));
      });
      assert.ok(worst <= 1e-4 * scale + 1e-7, `${fixed.training.parameterNames[index]}: difference ${worst} at scale ${scale}`);
    });
  });
});
