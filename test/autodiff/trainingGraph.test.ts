import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { type NodeProto, type TensorProto, tensorDims } from '../../src/onnx/model.js';
import { makeNode } from '../../src/onnx/graph.js';
import { buildTrainingGraph, readParameters } from '../../src/autodiff/trainingGraph.js';
import { buildModel, createSession, initializerValues, meanBinaryCrossEntropy, randomArray, randomTensor, seededRandom } from './helpers.js';

const LABELS = 2;

/** images [N, 4] -> Mul(scale) -> middle nodes -> Gemm(head) -> logits [N, 2]. */
function smallModel(middle: (input: string) => { nodes: NodeProto[]; output: string; initializers?: TensorProto[] }, batch: number | string = 3) {
  const random = seededRandom(5);
  const body = middle('scaled');
  return buildModel({
    nodes: [
      makeNode('Mul', ['images', 'scale'], ['scaled'], {}, 'scale_mul'),
      ...body.nodes,
      makeNode('Gemm', [body.output, 'head_weight', 'head_bias'], ['logits'], { transB: 1 }, 'head_gemm'),
    ],
    initializers: [
      randomTensor(random, 'scale', [4], 0.5, 1.5),
      ...(body.initializers ?? []),
      randomTensor(random, 'head_weight', [LABELS, 4]),
      randomTensor(random, 'head_bias', [LABELS]),
    ],
    inputName: 'images',
    inputShape: [batch, 4],
    logitsName: 'logits',
  });
}

function feeds(model: ReturnType<typeof smallModel>, names: readonly string[], batch: number, seed = 9): Record<string, ort.Tensor> {
  const random = seededRandom(seed);
  const result: Record<string, ort.Tensor> = {
    images: new ort.Tensor('float32', randomArray(random, batch * 4, -2, 2), [batch, 4]),
    targets: new ort.Tensor('float32', Float32Array.from({ length: batch * LABELS }, () => (random() < 0.5 ? 1 : 0)), [batch, LABELS]),
  };
  for (const [name, entry] of initializerValues(model, names)) {
    result[name] = new ort.Tensor('float32', entry.values, entry.dims);
  }
  return result;
}

describe('buildTrainingGraph', () => {
  test('unsupported operator names op type and node', () => {
    const model = smallModel((input) => ({ nodes: [makeNode('Softmax', [input], ['soft'], { axis: 1 }, 'my_softmax')], output: 'soft' }));
    assert.throws(
      () => buildTrainingGraph({ forward: model, inputName: 'images', logitsName: 'logits', trainable: ['scale', 'head_weight'] }),
      (error: Error) => error.message.includes('Softmax') && error.message.includes('my_softmax'),
    );
  });

  test('unsupported operator below trainable layers is allowed', async () => {
    const model = smallModel((input) => ({ nodes: [makeNode('Softmax', [input], ['soft'], { axis: 1 }, 'my_softmax')], output: 'soft' }));
    const training = buildTrainingGraph({ forward: model, inputName: 'images', logitsName: 'logits', trainable: ['head_weight', 'head_bias'] });
    const session = await createSession(training.model);
    const results = await session.run(feeds(model, training.parameterNames, 3));
    assert.deepEqual(results[training.gradientNames[0]].dims, [LABELS, 4]);
  });

  test('loss and probabilities match a float64 reference', async () => {
    const model = smallModel((input) => ({ nodes: [makeNode('Relu', [input], ['activated'], {}, 'relu')], output: 'activated' }));
    const training = buildTrainingGraph({ forward: model, inputName: 'images', logitsName: 'logits', trainable: ['scale', 'head_weight', 'head_bias'], batchSize: 3 });
    const inputFeeds = feeds(model, training.parameterNames, 3);
    const results = await (await createSession(training.model)).run(inputFeeds);

    const forwardSession = await createSession(model);
    const logits = (await forwardSession.run({ images: inputFeeds.images })).logits.data as Float32Array;
    const targets = inputFeeds.targets.data as Float32Array;
    const loss = (results.loss.data as Float32Array)[0];
    assert.deepEqual(results.loss.dims, []);
    assert.ok(Math.abs(loss - meanBinaryCrossEntropy(logits, targets)) < 1e-6, `loss ${loss}`);

    const probabilities = results.probabilities.data as Float32Array;
    logits.forEach((logit, index) => {
      assert.ok(Math.abs(probabilities[index] - 1 / (1 + Math.exp(-logit))) < 1e-6, `probability ${index}`);
    });
  });

  test('loss stays finite for large logits', async () => {
    const model = smallModel((input) => ({
      nodes: [makeNode('Mul', [input, 'factor'], ['large'], {}, 'large')],
      output: 'large',
      initializers: [randomTensor(seededRandom(1), 'factor', [1], 500, 500)],
    }));
    const training = buildTrainingGraph({ forward: model, inputName: 'images', logitsName: 'logits', trainable: ['head_weight'], batchSize: 3 });
    const results = await (await createSession(training.model)).run(feeds(model, training.parameterNames, 3));
    assert.ok(Number.isFinite((results.loss.data as Float32Array)[0]));
    assert.ok((results[training.gradientNames[0]].data as Float32Array).every(Number.isFinite));
  });

  test('dynamic batch runs with different batch sizes', async () => {
    const model = smallModel((input) => ({ nodes: [makeNode('Sigmoid', [input], ['activated'], {}, 'sigmoid')], output: 'activated' }), 'N');
    const training = buildTrainingGraph({ forward: model, inputName: 'images', logitsName: 'logits', trainable: ['scale', 'head_weight'] });
    const session = await createSession(training.model);
    for (const batch of [1, 4]) {
      const results = await session.run(feeds(model, training.parameterNames, batch));
      assert.deepEqual(results.probabilities.dims, [batch, LABELS]);
      assert.deepEqual(results[training.gradientNames[0]].dims, [4]);
    }
  });

  test('gradient outputs follow parameter order and shapes', () => {
    const model = smallModel((input) => ({ nodes: [makeNode('Relu', [input], ['activated'], {}, 'relu')], output: 'activated' }));
    const trainable = ['head_bias', 'scale', 'head_weight'];
    const training = buildTrainingGraph({ forward: model, inputName: 'images', logitsName: 'logits', trainable });
    assert.deepEqual(training.parameterNames, trainable);
    const graph = training.model.graph!;
    const outputs = new Map((graph.output ?? []).map((output) => [output.name, output]));
    const initializers = new Map((model.graph?.initializer ?? []).map((tensor) => [tensor.name, tensorDims(tensor)]));
    training.gradientNames.forEach((name, index) => {
      const dims = outputs.get(name)?.type?.tensorType?.shape?.dim?.map((dim) => Number(dim.dimValue));
      assert.deepEqual(dims, initializers.get(trainable[index]));
    });
    assert.deepEqual((graph.input ?? []).map((input) => input.name), ['images', 'targets', ...trainable]);
  });

  test('invalid specs are rejected with the offending name', () => {
    const model = smallModel((input) => ({ nodes: [makeNode('Relu', [input], ['activated'], {}, 'relu')], output: 'activated' }));
    const build = (overrides: Partial<Parameters<typeof buildTrainingGraph>[0]>) => () =>
      buildTrainingGraph({ forward: model, inputName: 'images', logitsName: 'logits', trainable: ['scale'], ...overrides });
    assert.throws(build({ trainable: ['missing_weight'] }), /missing_weight/);
    assert.throws(build({ inputName: 'pixels' }), /pixels/);
    assert.throws(build({ logitsName: 'scores' }), /scores/);
    assert.throws(build({ trainable: [] }), /no trainable parameters/);
    assert.throws(build({ batchSize: 0 }), /batchSize/);
  });

  test('parameter that does not reach the logits is rejected', () => {
    const model = smallModel((input) => ({ nodes: [makeNode('Relu', [input], ['activated'], {}, 'relu')], output: 'activated' }));
    model.graph!.initializer!.push(randomTensor(seededRandom(2), 'unused_weight', [4]));
    model.graph!.node!.push(makeNode('Mul', ['scaled', 'unused_weight'], ['unused_out'], {}, 'unused_mul'));
    assert.throws(
      () => buildTrainingGraph({ forward: model, inputName: 'images', logitsName: 'logits', trainable: ['unused_weight'] }),
      /unused_weight does not affect the logits/,
    );
  });

  test('readParameters returns values in order', () => {
    const model = smallModel((input) => ({ nodes: [makeNode('Relu', [input], ['activated'], {}, 'relu')], output: 'activated' }));
    const parameters = readParameters(model, ['head_bias', 'scale']);
    assert.deepEqual(parameters.map((parameter) => parameter.name), ['head_bias', 'scale']);
    assert.deepEqual(parameters.map((parameter) => parameter.dims), [[LABELS], [4]]);
    assert.equal(parameters[1].values.length, 4);
    assert.throws(() => readParameters(model, ['missing']), /missing is not an initializer/);
  });
});
