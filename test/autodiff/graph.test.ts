import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { float32Tensor, float32ValueInfo, valueInfoShape } from '../../src/onnx/model.js';
import { appendLinearHead, cutAtTensor, makeNode, setInputShape, splitAtTensor, topologicalSort } from '../../src/onnx/graph.js';
import { buildModel } from './helpers.js';

function chainModel() {
  return buildModel({
    nodes: [
      makeNode('Relu', ['images'], ['first'], {}, 'first_relu'),
      makeNode('Mul', ['first', 'scale'], ['features'], {}, 'scale_mul'),
      makeNode('Mul', ['features', 'unused_scale'], ['logits'], {}, 'old_head'),
    ],
    initializers: [float32Tensor('scale', [3], Float32Array.of(1, 2, 3)), float32Tensor('unused_scale', [3], Float32Array.of(1, 1, 1))],
    inputName: 'images',
    inputShape: ['N', 3],
    logitsName: 'logits',
  });
}

describe('graph surgery', () => {
  test('cutAtTensor keeps only needed nodes', () => {
    const cut = cutAtTensor(chainModel(), 'features');
    assert.deepEqual(cut.graph?.node?.map((node) => node.name), ['first_relu', 'scale_mul']);
    assert.deepEqual(cut.graph?.initializer?.map((tensor) => tensor.name), ['scale']);
    assert.deepEqual(cut.graph?.output?.map((output) => output.name), ['features']);
  });

  test('cutAtTensor rejects an unknown tensor', () => {
    assert.throws(() => cutAtTensor(chainModel(), 'nowhere'), /nowhere is not produced/);
  });

  test('appendLinearHead adds a Gemm output', () => {
    const model = appendLinearHead(cutAtTensor(chainModel(), 'features'), {
      featuresName: 'features',
      weight: new Float32Array(2 * 3),
      bias: new Float32Array(2),
      logitsName: 'scores',
    });
    const head = model.graph?.node?.at(-1);
    assert.equal(head?.opType, 'Gemm');
    assert.deepEqual(head?.input, ['features', 'head_weight', 'head_bias']);
    assert.deepEqual(model.graph?.output?.map((output) => output.name), ['scores']);
    assert.deepEqual(valueInfoShape(model.graph!.output![0]), [-1, 2]);
  });

  test('appendLinearHead rejects a weight of the wrong size', () => {
    assert.throws(() => appendLinearHead(chainModel(), { featuresName: 'features', weight: new Float32Array(5), bias: new Float32Array(2) }), /not a multiple/);
  });

  test('appendLinearHead rejects a taken name', () => {
    assert.throws(() => appendLinearHead(chainModel(), { featuresName: 'features', weight: new Float32Array(6), bias: new Float32Array(2) }), /already has a tensor named logits/);
  });

  test('setInputShape replaces the input dimensions', () => {
    const model = setInputShape(chainModel(), 'images', [4, 3]);
    assert.deepEqual(valueInfoShape(model.graph!.input![0]), [4, 3]);
    assert.throws(() => setInputShape(chainModel(), 'images', [4, 3, 1]), /rank/);
  });

  test('topologicalSort orders producers first', () => {
    const nodes = chainModel().graph!.node!;
    const sorted = topologicalSort([nodes[2], nodes[0], nodes[1]]);
    assert.deepEqual(sorted.map((node) => node.name), ['first_relu', 'scale_mul', 'old_head']);
  });
});

describe('splitAtTensor', () => {
  test('prefix and suffix compose to the model', () => {
    const { prefix, suffix } = splitAtTensor(chainModel(), 'first', ['N', 3]);
    assert.deepEqual(prefix.graph?.node?.map((node) => node.name), ['first_relu']);
    assert.deepEqual(prefix.graph?.output?.map((output) => output.name), ['first']);
    assert.deepEqual(suffix.graph?.node?.map((node) => node.name), ['scale_mul', 'old_head']);
    assert.deepEqual(suffix.graph?.input?.map((input) => input.name), ['first']);
    assert.deepEqual(suffix.graph?.initializer?.map((tensor) => tensor.name).sort(), ['scale', 'unused_scale']);
  });

  test('boundary that does not separate is rejected', () => {
    const model = chainModel();
    model.graph!.node!.push(makeNode('Add', ['logits', 'images'], ['shifted'], {}, 'skip_add'));
    model.graph!.output = [float32ValueInfo('shifted', ['N', 3])];
    assert.throws(() => splitAtTensor(model, 'first', ['N', 3]), /depend on images without passing through first/);
  });
});
