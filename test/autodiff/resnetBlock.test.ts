import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { makeNode } from '../../src/onnx/graph.js';
import { buildModel, checkGradients, describeChecks, failedChecks, randomArray, randomTensor, seededRandom } from './helpers.js';

// A small ResNet-style network: stem Conv + BatchNormalization + Relu + MaxPool, one basic residual
// block with a 1x1 stride-2 projection shortcut, then GlobalAveragePool, Flatten and a Gemm head.
function miniResNet(random: () => number) {
  const channels = 8;
  const wide = 12;
  const batchNorm = (prefix: string, size: number) => [
    randomTensor(random, `${prefix}_scale`, [size], 0.5, 1.5),
    randomTensor(random, `${prefix}_bias`, [size], -0.2, 0.2),
    randomTensor(random, `${prefix}_mean`, [size], -0.2, 0.2),
    randomTensor(random, `${prefix}_variance`, [size], 0.5, 1.5),
  ];
  const nodes = [
    makeNode('Conv', ['images', 'stem_weight'], ['stem'], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }, 'stem_conv'),
    makeNode('BatchNormalization', ['stem', 'stem_bn_scale', 'stem_bn_bias', 'stem_bn_mean', 'stem_bn_variance'], ['stem_normalized'], {}, 'stem_bn'),
    makeNode('Relu', ['stem_normalized'], ['stem_activated'], {}, 'stem_relu'),
    makeNode('MaxPool', ['stem_activated'], ['pooled'], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }, 'stem_pool'),
    makeNode('Conv', ['pooled', 'block_weight1'], ['block1'], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }, 'block_conv1'),
    makeNode('BatchNormalization', ['block1', 'block_bn1_scale', 'block_bn1_bias', 'block_bn1_mean', 'block_bn1_variance'], ['block1_normalized'], {}, 'block_bn1'),
    makeNode('Relu', ['block1_normalized'], ['block1_activated'], {}, 'block_relu1'),
    makeNode('Conv', ['block1_activated', 'block_weight2'], ['block2'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, 'block_conv2'),
    makeNode('Conv', ['pooled', 'shortcut_weight', 'shortcut_bias'], ['shortcut'], { kernel_shape: [1, 1], strides: [2, 2] }, 'shortcut_conv'),
    makeNode('Add', ['block2', 'shortcut'], ['block_sum'], {}, 'block_add'),
    makeNode('Relu', ['block_sum'], ['block_out'], {}, 'block_relu2'),
    makeNode('GlobalAveragePool', ['block_out'], ['pooled_features'], {}, 'global_pool'),
    makeNode('Flatten', ['pooled_features'], ['features'], { axis: 1 }, 'flatten'),
    makeNode('Gemm', ['features', 'head_weight', 'head_bias'], ['logits'], { transB: 1 }, 'head'),
  ];
  const initializers = [
    randomTensor(random, 'stem_weight', [channels, 3, 3, 3], -0.4, 0.4),
    ...batchNorm('stem_bn', channels),
    randomTensor(random, 'block_weight1', [wide, channels, 3, 3], -0.3, 0.3),
    ...batchNorm('block_bn1', wide),
    randomTensor(random, 'block_weight2', [wide, wide, 3, 3], -0.3, 0.3),
    randomTensor(random, 'shortcut_weight', [wide, channels, 1, 1], -0.5, 0.5),
    randomTensor(random, 'shortcut_bias', [wide], -0.2, 0.2),
    randomTensor(random, 'head_weight', [4, wide], -1, 1),
    randomTensor(random, 'head_bias', [4]),
  ];
  return buildModel({ nodes, initializers, inputName: 'images', inputShape: ['N', 3, 16, 16], logitsName: 'logits' });
}

test('ResNet block gradients match finite differences', async () => {
  // Relu kinks are close together in so small a network, so the step is small (1e-3 crossed one).
  const random = seededRandom(77);
  const model = miniResNet(random);
  const trainable = (model.graph?.initializer ?? []).map((tensor) => tensor.name ?? '').filter((name) => !/_mean$|_variance$/.test(name));
  const images = new ort.Tensor('float32', randomArray(random, 2 * 3 * 16 * 16), [2, 3, 16, 16]);
  const targets = Float32Array.from({ length: 2 * 4 }, () => (random() < 0.5 ? 1 : 0));

  const { checks, training } = await checkGradients(model, 'images', 'logits', trainable, images, targets, { step: 1e-4, largestEntries: 3, randomEntries: 2, seed: 5 }, 2);

  assert.deepEqual(training.parameterNames, trainable);
  for (const parameter of trainable) {
    const own = checks.filter((check) => check.parameter === parameter);
    const largest = Math.max(...own.map((check) => Math.abs(check.analytic)));
    assert.ok(largest > 1e-4, `${parameter}: gradients are all near zero (largest ${largest})`);
    // float32 rounding of the loss (about 1e-7 of 0.7) over a 2e-4 difference adds noise of a few 1e-4.
    const failed = failedChecks(own, 2e-2, 2e-3 * largest + 3e-4);
    assert.deepEqual(failed, [], `${parameter} gradient mismatches:\n${describeChecks(failed)}`);
  }
});
