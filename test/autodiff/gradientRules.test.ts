import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { type NodeProto, type TensorProto, float32Tensor, int64Tensor } from '../../src/onnx/model.js';
import { type AttributeValue, makeNode } from '../../src/onnx/graph.js';
import { gradientRules } from '../../src/autodiff/gradientRules.js';
import { convolutionFormulations } from '../../src/autodiff/convolutionGradients.js';
import { depthwiseLowering } from '../../src/autodiff/depthwiseLowering.js';
import { buildTrainingGraph } from '../../src/autodiff/trainingGraph.js';
import { buildModel, checkGradients, describeChecks, failedChecks, randomArray, randomTensor, seededRandom } from './helpers.js';

const LABELS = 3;

interface CaseBody {
  nodes: NodeProto[];
  initializers: TensorProto[];
  /** Tensor that the test head flattens into logits. */
  output: string;
  /** Shape of `output` without the batch dimension. */
  outputShape: number[];
}

interface RuleCase {
  name: string;
  /** Operator types whose rules the case exercises, besides the Mul, Flatten and Gemm of the harness. */
  covers: string[];
  inputShape: number[];
  build: (input: string, random: () => number) => CaseBody;
  /** Leave the batch dimension dynamic in the training graph. */
  dynamicBatch?: boolean;
  opset?: number;
  /** Range of the random input values. */
  inputRange?: [number, number];
  /** Finite-difference step; small for piecewise-linear operators, whose kinks a large step may cross. */
  step?: number;
}

const node = (opType: string, inputs: string[], outputs: string[], attributes: Record<string, AttributeValue> = {}) => makeNode(opType, inputs, outputs, attributes, `${opType.toLowerCase()}_${outputs[0]}`);

function convolutionCase(
  name: string,
  channels: number,
  outputChannels: number,
  kernel: [number, number],
  attributes: Record<string, AttributeValue>,
  size: number,
  outputSize: [number, number],
  withBias: boolean,
): RuleCase {
  const group = typeof attributes.group === 'number' ? attributes.group : 1;
  return {
    name,
    covers: ['Conv'],
    inputShape: [2, channels, size, size],
    build: (input, random) => {
      const initializers = [randomTensor(random, 'conv_weight', [outputChannels, channels / group, ...kernel], -0.5, 0.5)];
      const inputs = [input, 'conv_weight'];
      if (withBias) {
        initializers.push(randomTensor(random, 'conv_bias', [outputChannels]));
        inputs.push('conv_bias');
      }
      return { nodes: [node('Conv', inputs, ['conv_out'], attributes)], initializers, output: 'conv_out', outputShape: [outputChannels, ...outputSize] };
    },
  };
}

function unaryCase(opType: string, attributes: Record<string, AttributeValue> = {}, inputRange: [number, number] = [-2, 2]): RuleCase {
  return {
    name: opType,
    covers: [opType],
    inputShape: [2, 3, 4, 4],
    inputRange,
    step: 3e-4,
    build: (input) => ({ nodes: [node(opType, [input], ['unary_out'], attributes)], initializers: [], output: 'unary_out', outputShape: [3, 4, 4] }),
  };
}

const cases: RuleCase[] = [
  convolutionCase('Conv 3x3 stride 1 with bias', 3, 4, [3, 3], { pads: [1, 1, 1, 1] }, 6, [6, 6], true),
  convolutionCase('Conv 3x3 stride 2 asymmetric pads', 3, 4, [3, 3], { strides: [2, 2], pads: [0, 0, 1, 1] }, 7, [3, 3], false),
  convolutionCase('Conv 3x2 stride 2 uneven pads', 2, 3, [3, 2], { strides: [2, 1], pads: [2, 1, 0, 0] }, 6, [3, 6], true),
  convolutionCase('Conv 3x3 with many input channels', 8, 4, [3, 3], { strides: [2, 2], pads: [1, 1, 1, 1] }, 6, [3, 3], true),
  { ...convolutionCase('Conv 3x3 many channels dynamic batch', 8, 3, [3, 3], { pads: [1, 0, 1, 0] }, 5, [5, 3], false), dynamicBatch: true },
  convolutionCase('Conv 1x1 pointwise with bias', 4, 5, [1, 1], {}, 5, [5, 5], true),
  convolutionCase('Conv 1x1 stride 2', 4, 3, [1, 1], { strides: [2, 2] }, 5, [3, 3], true),
  convolutionCase('Conv depthwise stride 1', 4, 4, [3, 3], { group: 4, pads: [1, 1, 1, 1] }, 6, [6, 6], true),
  convolutionCase('Conv depthwise stride 2', 4, 4, [3, 3], { group: 4, strides: [2, 2], pads: [0, 0, 1, 1] }, 8, [4, 4], true),
  convolutionCase('Conv depthwise stride 2 uneven pads dilation 2', 3, 3, [3, 3], { group: 3, strides: [2, 1], pads: [2, 1, 0, 2], dilations: [2, 2] }, 7, [3, 6], true),
  convolutionCase('Conv depthwise multiplier 2', 3, 6, [3, 3], { group: 3, pads: [1, 1, 1, 1] }, 5, [5, 5], false),
  convolutionCase('Conv grouped stride 1', 4, 6, [3, 3], { group: 2, pads: [1, 1, 1, 1] }, 5, [5, 5], true),
  convolutionCase('Conv grouped stride 2', 4, 6, [3, 3], { group: 2, strides: [2, 2], pads: [1, 1, 1, 1] }, 6, [3, 3], false),
  convolutionCase('Conv auto_pad SAME_UPPER', 2, 3, [3, 3], { auto_pad: 'SAME_UPPER', strides: [2, 2] }, 6, [3, 3], true),
  { ...convolutionCase('Conv dynamic batch', 3, 4, [3, 3], { group: 1, strides: [2, 2], pads: [1, 1, 1, 1] }, 6, [3, 3], true), dynamicBatch: true },
  { ...convolutionCase('Conv depthwise dynamic batch', 4, 4, [3, 3], { group: 4, pads: [1, 1, 1, 1] }, 5, [5, 5], true), dynamicBatch: true },
  { ...convolutionCase('Conv 1x1 dynamic batch', 4, 3, [1, 1], {}, 4, [4, 4], true), dynamicBatch: true },
  convolutionCase('Conv 1x1 small map many channels', 8, 6, [1, 1], {}, 2, [2, 2], true),
  { ...convolutionCase('Conv 1x1 small map many channels dynamic batch', 8, 6, [1, 1], {}, 2, [2, 2], false), dynamicBatch: true },
  {
    name: 'Clip bounds as inputs',
    covers: ['Clip'],
    step: 1e-4,
    inputShape: [2, 3, 4, 4],
    inputRange: [-3, 3],
    build: () => ({
      nodes: [node('Clip', ['pre_out', 'clip_min', 'clip_max'], ['clip_out'])],
      initializers: [float32Tensor('clip_min', [], Float32Array.of(-1)), float32Tensor('clip_max', [], Float32Array.of(1.5))],
      output: 'clip_out',
      outputShape: [3, 4, 4],
    }),
  },
  {
    name: 'Clip ReLU6 with only max input',
    covers: ['Clip'],
    step: 1e-4,
    inputShape: [2, 3, 4, 4],
    inputRange: [-8, 8],
    build: () => ({
      nodes: [node('Clip', ['pre_out', '', 'clip_max'], ['clip_out'])],
      initializers: [float32Tensor('clip_max', [], Float32Array.of(6))],
      output: 'clip_out',
      outputShape: [3, 4, 4],
    }),
  },
  {
    name: 'Clip bounds as attributes (opset 10)',
    covers: ['Clip'],
    step: 1e-4,
    inputShape: [2, 3, 4, 4],
    inputRange: [-8, 8],
    opset: 10,
    build: () => ({
      nodes: [node('Clip', ['pre_out'], ['clip_out'], { min: { float: 0 }, max: { float: 6 } })],
      initializers: [],
      output: 'clip_out',
      outputShape: [3, 4, 4],
    }),
  },
  unaryCase('Relu'),
  unaryCase('Sigmoid'),
  unaryCase('Tanh'),
  unaryCase('LeakyRelu', { alpha: { float: 0.1 } }),
  unaryCase('HardSigmoid', { alpha: { float: 0.3 }, beta: { float: 0.4 } }, [-4, 4]),
  { ...unaryCase('HardSwish', {}, [-5, 5]), opset: 14 },
  unaryCase('Neg'),
  unaryCase('Identity'),
  {
    name: 'Add with broadcasting and shared input',
    covers: ['Add'],
    inputShape: [2, 3, 4, 4],
    build: (input, random) => ({
      nodes: [node('Add', ['pre_out', 'add_bias'], ['add_first']), node('Add', ['add_first', 'pre_out'], ['add_second']), node('Add', ['add_second', 'add_row'], ['add_out'])],
      initializers: [randomTensor(random, 'add_bias', [3, 1, 1]), randomTensor(random, 'add_row', [1, 4])],
      output: 'add_out',
      outputShape: [3, 4, 4],
    }),
  },
  {
    name: 'Sub with broadcasting',
    covers: ['Sub'],
    inputShape: [2, 3, 4, 4],
    build: (input, random) => ({
      nodes: [node('Sub', ['sub_left', 'pre_out'], ['sub_first']), node('Sub', ['sub_first', 'sub_right'], ['sub_out'])],
      initializers: [randomTensor(random, 'sub_left', [4]), randomTensor(random, 'sub_right', [1, 3, 1, 4])],
      output: 'sub_out',
      outputShape: [3, 4, 4],
    }),
  },
  {
    name: 'Mul with broadcasting and a squared input',
    covers: ['Mul'],
    inputShape: [2, 3, 4, 4],
    build: (input, random) => ({
      nodes: [node('Mul', ['pre_out', 'mul_scale'], ['mul_first']), node('Mul', ['mul_first', 'mul_first'], ['mul_out'])],
      initializers: [randomTensor(random, 'mul_scale', [3, 1, 4])],
      output: 'mul_out',
      outputShape: [3, 4, 4],
    }),
  },
  {
    name: 'Div with broadcasting',
    covers: ['Div'],
    inputShape: [2, 3, 4, 4],
    build: (input, random) => ({
      nodes: [node('Div', ['pre_out', 'div_denominator'], ['div_out'])],
      initializers: [randomTensor(random, 'div_denominator', [3, 1, 1], 1, 2)],
      output: 'div_out',
      outputShape: [3, 4, 4],
    }),
  },
  {
    name: 'GlobalAveragePool',
    covers: ['GlobalAveragePool'],
    inputShape: [2, 3, 5, 4],
    build: () => ({ nodes: [node('GlobalAveragePool', ['pre_out'], ['pool_out'])], initializers: [], output: 'pool_out', outputShape: [3, 1, 1] }),
  },
  {
    name: 'GlobalAveragePool dynamic batch',
    covers: ['GlobalAveragePool'],
    inputShape: [2, 3, 5, 4],
    dynamicBatch: true,
    build: () => ({ nodes: [node('GlobalAveragePool', ['pre_out'], ['pool_out'])], initializers: [], output: 'pool_out', outputShape: [3, 1, 1] }),
  },
  {
    name: 'ReduceMean with keepdims 0',
    covers: ['ReduceMean'],
    inputShape: [2, 3, 4, 5],
    build: () => ({ nodes: [node('ReduceMean', ['pre_out'], ['mean_out'], { axes: [2, -1], keepdims: 0 })], initializers: [], output: 'mean_out', outputShape: [3] }),
  },
  {
    name: 'ReduceMean with keepdims 1',
    covers: ['ReduceMean'],
    inputShape: [2, 3, 4, 5],
    build: () => ({ nodes: [node('ReduceMean', ['pre_out'], ['mean_out'], { axes: [1] })], initializers: [], output: 'mean_out', outputShape: [1, 4, 5] }),
  },
  {
    name: 'ReduceSum with axes input',
    covers: ['ReduceSum'],
    inputShape: [2, 3, 4, 5],
    build: () => ({
      nodes: [node('ReduceSum', ['pre_out', 'sum_axes'], ['sum_out'], { keepdims: 0 })],
      initializers: [int64Tensor('sum_axes', [1], [3])],
      output: 'sum_out',
      outputShape: [3, 4],
    }),
  },
  {
    name: 'Reshape, Squeeze, Unsqueeze and Transpose',
    covers: ['Reshape', 'Squeeze', 'Unsqueeze', 'Transpose'],
    inputShape: [2, 3, 4, 2],
    build: () => ({
      nodes: [
        node('Reshape', ['pre_out', 'reshape_shape'], ['reshaped']),
        node('Unsqueeze', ['reshaped', 'unsqueeze_axes'], ['unsqueezed']),
        node('Transpose', ['unsqueezed'], ['transposed'], { perm: [0, 3, 1, 2] }),
        node('Squeeze', ['transposed', 'squeeze_axes'], ['squeezed']),
      ],
      initializers: [int64Tensor('reshape_shape', [3], [0, 6, -1]), int64Tensor('unsqueeze_axes', [1], [1]), int64Tensor('squeeze_axes', [1], [2])],
      output: 'squeezed',
      outputShape: [4, 6],
    }),
  },
  {
    name: 'Flatten with axis 2',
    covers: ['Flatten'],
    inputShape: [2, 3, 4, 2],
    build: () => ({
      nodes: [node('Flatten', ['pre_out'], ['flat_out'], { axis: 2 }), node('Reshape', ['flat_out', 'batch_shape'], ['batch_out'])],
      initializers: [int64Tensor('batch_shape', [2], [2, 24])],
      output: 'batch_out',
      outputShape: [24],
    }),
  },
  {
    name: 'Gemm with transA, alpha, beta and broadcast C',
    covers: ['Gemm'],
    inputShape: [2, 5],
    build: (input, random) => ({
      nodes: [node('Transpose', ['pre_out'], ['gemm_a']), node('Gemm', ['gemm_a', 'gemm_b', 'gemm_c'], ['gemm_out'], { transA: 1, alpha: { float: 0.7 }, beta: { float: 1.3 } })],
      initializers: [randomTensor(random, 'gemm_b', [5, 4]), randomTensor(random, 'gemm_c', [1, 4])],
      output: 'gemm_out',
      outputShape: [4],
    }),
  },
  {
    name: 'Gemm with transB and a computed B',
    covers: ['Gemm'],
    inputShape: [2, 5],
    build: (input, random) => ({
      nodes: [node('Mul', ['gemm_weight', 'gemm_weight_scale'], ['gemm_b']), node('Gemm', ['pre_out', 'gemm_b'], ['gemm_out'], { transB: 1 })],
      initializers: [randomTensor(random, 'gemm_weight', [4, 5]), randomTensor(random, 'gemm_weight_scale', [1, 5])],
      output: 'gemm_out',
      outputShape: [4],
    }),
  },
  {
    name: 'Gemm with transA and transB',
    covers: ['Gemm'],
    inputShape: [2, 5],
    build: (input, random) => ({
      nodes: [node('Transpose', ['pre_out'], ['gemm_a']), node('Gemm', ['gemm_a', 'gemm_b', 'gemm_c'], ['gemm_out'], { transA: 1, transB: 1, beta: { float: 0.5 } })],
      initializers: [randomTensor(random, 'gemm_b', [4, 5]), randomTensor(random, 'gemm_c', [4])],
      output: 'gemm_out',
      outputShape: [4],
    }),
  },
  {
    name: 'MatMul batched with a shared matrix',
    covers: ['MatMul'],
    inputShape: [2, 3, 4],
    build: (input, random) => ({
      nodes: [node('MatMul', ['pre_out', 'matmul_right'], ['matmul_first']), node('MatMul', ['matmul_left', 'matmul_first'], ['matmul_out'])],
      initializers: [randomTensor(random, 'matmul_right', [4, 5]), randomTensor(random, 'matmul_left', [1, 2, 3])],
      output: 'matmul_out',
      outputShape: [2, 5],
    }),
  },
  {
    name: 'MatMul with a vector',
    covers: ['MatMul'],
    inputShape: [2, 3, 4],
    build: (input, random) => ({
      nodes: [node('MatMul', ['pre_out', 'matmul_vector'], ['matmul_out'])],
      initializers: [randomTensor(random, 'matmul_vector', [4])],
      output: 'matmul_out',
      outputShape: [3],
    }),
  },
  {
    name: 'BatchNormalization inference mode',
    covers: ['BatchNormalization'],
    inputShape: [2, 3, 4, 4],
    build: (input, random) => ({
      nodes: [node('BatchNormalization', ['pre_out', 'bn_scale', 'bn_bias', 'bn_mean', 'bn_variance'], ['bn_out'], { epsilon: { float: 1e-3 } })],
      initializers: [
        randomTensor(random, 'bn_scale', [3], 0.5, 1.5),
        randomTensor(random, 'bn_bias', [3]),
        randomTensor(random, 'bn_mean', [3], -0.3, 0.3),
        randomTensor(random, 'bn_variance', [3], 0.5, 2),
      ],
      output: 'bn_out',
      outputShape: [3, 4, 4],
    }),
  },
  {
    name: 'MaxPool 3x3 stride 2 overlapping',
    step: 1e-3,
    covers: ['MaxPool'],
    inputShape: [2, 3, 7, 7],
    build: () => ({ nodes: [node('MaxPool', ['pre_out'], ['pool_out'], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] })], initializers: [], output: 'pool_out', outputShape: [3, 4, 4] }),
  },
  {
    name: 'MaxPool 2x2 dynamic batch',
    step: 1e-3,
    covers: ['MaxPool'],
    inputShape: [2, 3, 6, 6],
    dynamicBatch: true,
    build: () => ({ nodes: [node('MaxPool', ['pre_out'], ['pool_out'], { kernel_shape: [2, 2], strides: [2, 2] })], initializers: [], output: 'pool_out', outputShape: [3, 3, 3] }),
  },
  {
    name: 'AveragePool excluding pads',
    covers: ['AveragePool'],
    inputShape: [2, 3, 7, 7],
    build: () => ({ nodes: [node('AveragePool', ['pre_out'], ['pool_out'], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] })], initializers: [], output: 'pool_out', outputShape: [3, 4, 4] }),
  },
  {
    name: 'AveragePool including pads',
    covers: ['AveragePool'],
    inputShape: [2, 3, 6, 6],
    build: () => ({
      nodes: [node('AveragePool', ['pre_out'], ['pool_out'], { kernel_shape: [3, 2], strides: [2, 2], pads: [1, 0, 1, 1], count_include_pad: 1 })],
      initializers: [],
      output: 'pool_out',
      outputShape: [3, 3, 3],
    }),
  },
  {
    name: 'AveragePool ceil mode',
    covers: ['AveragePool'],
    inputShape: [2, 3, 6, 6],
    build: () => ({ nodes: [node('AveragePool', ['pre_out'], ['pool_out'], { kernel_shape: [3, 3], strides: [2, 2], ceil_mode: 1 })], initializers: [], output: 'pool_out', outputShape: [3, 3, 3] }),
  },
  {
    name: 'Concat',
    covers: ['Concat'],
    inputShape: [2, 3, 4],
    build: (input, random) => ({
      nodes: [node('Concat', ['pre_out', 'concat_extra', 'pre_out'], ['concat_out'], { axis: 1 })],
      initializers: [randomTensor(random, 'concat_extra', [2, 2, 4])],
      output: 'concat_out',
      outputShape: [8, 4],
    }),
  },
  {
    name: 'Dropout',
    covers: ['Dropout'],
    inputShape: [2, 3, 4],
    build: () => ({ nodes: [node('Dropout', ['pre_out'], ['dropout_out'])], initializers: [], output: 'dropout_out', outputShape: [3, 4] }),
  },
];

/**
 * Wraps a case body: a trainable per-channel scale before it (so the rule's input gradient is checked
 * through that scale's gradient) and a trainable Flatten + Gemm head after it.
 */
function buildCaseModel(ruleCase: RuleCase, random: () => number) {
  const inputShape = ruleCase.inputShape;
  const scaleShape = inputShape.length === 4 ? [inputShape[1], 1, 1] : [inputShape[inputShape.length - 1]];
  const body = ruleCase.build('pre_out', random);
  const features = body.outputShape.reduce((product, dim) => product * dim, 1);
  const nodes = [
    node('Mul', ['images', 'pre_scale'], ['pre_out']),
    ...body.nodes,
    node('Flatten', [body.output], ['head_features'], { axis: 1 }),
    node('Gemm', ['head_features', 'head_weight', 'head_bias'], ['logits'], { transB: 1 }),
  ];
  const initializers = [
    randomTensor(random, 'pre_scale', scaleShape, 0.5, 1.5),
    ...body.initializers,
    randomTensor(random, 'head_weight', [LABELS, features], -0.5, 0.5),
    randomTensor(random, 'head_bias', [LABELS]),
  ];
  const model = buildModel({
    nodes,
    initializers,
    inputName: 'images',
    inputShape: [ruleCase.dynamicBatch ? 'N' : inputShape[0], ...inputShape.slice(1)],
    logitsName: 'logits',
    opset: ruleCase.opset,
  });
  const excluded = new Set(['clip_min', 'clip_max']);
  const trainable = initializers.filter((tensor) => tensor.dataType === 1 && !excluded.has(tensor.name ?? '')).map((tensor) => tensor.name ?? '');
  return { model, trainable };
}

async function checkCase(ruleCase: RuleCase, seed: number): Promise<void> {
  const random = seededRandom(seed);
  const { model, trainable } = buildCaseModel(ruleCase, random);
  const [low, high] = ruleCase.inputRange ?? [-1, 1];
  const inputCount = ruleCase.inputShape.reduce((product, dim) => product * dim, 1);
  const images = new ort.Tensor('float32', randomArray(random, inputCount, low, high), ruleCase.inputShape);
  const targets = Float32Array.from({ length: ruleCase.inputShape[0] * LABELS }, () => (random() < 0.5 ? 1 : 0));

  const { checks } = await checkGradients(
    model,
    'images',
    'logits',
    trainable,
    images,
    targets,
    { step: ruleCase.step ?? 1e-2, largestEntries: 4, randomEntries: 4, seed, expectedBatchSize: ruleCase.inputShape[0] },
    ruleCase.dynamicBatch ? undefined : ruleCase.inputShape[0],
  );

  const checked = new Set(checks.map((check) => check.parameter));
  assert.deepEqual(trainable.filter((name) => !checked.has(name)), [], 'every trainable parameter has checks');
  const largest = Math.max(...checks.map((check) => Math.abs(check.analytic)));
  assert.ok(largest > 1e-4, `gradients are all near zero (largest ${largest}), so the check would prove nothing`);
  const failed = failedChecks(checks, 1e-2, 1e-3 * largest);
  assert.deepEqual(failed, [], `gradient mismatches:\n${describeChecks(failed)}`);
}

describe('gradient rules against finite differences', () => {
  for (const [caseIndex, ruleCase] of cases.entries()) {
    test(ruleCase.name, () => checkCase(ruleCase, 1000 + caseIndex));
  }

  test('every rule has a finite-difference case', () => {
    const covered = new Set(['Mul', 'Flatten', 'Gemm', ...cases.flatMap((ruleCase) => ruleCase.covers)]);
    const missing = Object.keys(gradientRules).filter((opType) => !covered.has(opType));
    assert.deepEqual(missing, []);
  });
});

describe('pointwise weight-gradient forms', () => {
  // The finite-difference cases above check the values; this checks that both forms are among them.
  const forms = [
    { name: 'Conv 1x1 pointwise with bias', singleGemm: false },
    { name: 'Conv 1x1 dynamic batch', singleGemm: false },
    { name: 'Conv 1x1 small map many channels', singleGemm: true },
    { name: 'Conv 1x1 small map many channels dynamic batch', singleGemm: true },
  ];
  for (const form of forms) {
    test(`${form.name} uses ${form.singleGemm ? 'one Gemm over all pixels' : 'one MatMul per image'}`, () => {
      const ruleCase = cases.find((candidate) => candidate.name === form.name);
      assert.ok(ruleCase, `no case named ${form.name}`);
      const { model, trainable } = buildCaseModel(ruleCase, seededRandom(7));
      const training = buildTrainingGraph({ forward: model, inputName: 'images', logitsName: 'logits', trainable, batchSize: ruleCase.dynamicBatch ? undefined : ruleCase.inputShape[0] });
      const weightGradientNodes = (training.model.graph?.node ?? []).filter((graphNode) => (graphNode.output ?? []).some((name) => name.startsWith('conv_weight_grad_')));
      const operators = weightGradientNodes.map((graphNode) => graphNode.opType);
      assert.equal(operators.includes('Gemm'), form.singleGemm, `weight-gradient operators: ${operators.join(', ')}`);
      assert.equal(operators.includes('MatMul'), !form.singleGemm, `weight-gradient operators: ${operators.join(', ')}`);
    });
  }
});

describe('depthwise convolution formulations', () => {
  // The default settings lower these small depthwise Convs to MatMuls. Each variant here turns the
  // lowering off, so the Conv gradient rules get the same finite-difference checks.
  const depthwiseCases = cases.filter((ruleCase) => ruleCase.name.startsWith('Conv depthwise') && !ruleCase.name.includes('multiplier'));
  const variants = [
    { name: 'convolution-matrix weight gradient', formulations: { depthwiseWeightGradient: 'im2col' as const, depthwiseImagesPerChunk: 0, depthwiseMatrixMaxEntriesPerImage: 1e9 } },
    { name: 'im2col', formulations: { depthwiseWeightGradient: 'im2col' as const, depthwiseImagesPerChunk: 0, depthwiseMatrixMaxEntriesPerImage: 0 } },
    { name: 'im2col per image', formulations: { depthwiseWeightGradient: 'im2col' as const, depthwiseImagesPerChunk: 1, depthwiseMatrixMaxEntriesPerImage: 0 } },
    { name: 'batch as channels', formulations: { depthwiseWeightGradient: 'batchAsChannels' as const, depthwiseImagesPerChunk: 0, depthwiseMatrixMaxEntriesPerImage: 0 } },
  ];

  async function withFormulations<T>(formulations: Partial<typeof convolutionFormulations>, maxLoweredEntries: number, run: () => T | Promise<T>): Promise<T> {
    const saved = { ...convolutionFormulations };
    const savedLowering = depthwiseLowering.maxMatrixEntries;
    Object.assign(convolutionFormulations, formulations);
    depthwiseLowering.maxMatrixEntries = maxLoweredEntries;
    try {
      return await run();
    } finally {
      Object.assign(convolutionFormulations, saved);
      depthwiseLowering.maxMatrixEntries = savedLowering;
    }
  }

  // The Conv gradient rules support dilation 1 only, while a lowered Conv has no such limit.
  const undilatedCases = depthwiseCases.filter((ruleCase) => !ruleCase.name.includes('dilation'));
  for (const variant of variants) {
    for (const [caseIndex, ruleCase] of undilatedCases.entries()) {
      test(`${ruleCase.name}, ${variant.name}`, () => withFormulations(variant.formulations, 0, () => checkCase(ruleCase, 2000 + caseIndex)));
    }
  }

  function trainingNodes(ruleCase: RuleCase, trainableFilter: (name: string) => boolean = () => true): NodeProto[] {
    const { model, trainable } = buildCaseModel(ruleCase, seededRandom(11));
    const batchSize = ruleCase.dynamicBatch ? undefined : ruleCase.inputShape[0];
    return buildTrainingGraph({ forward: model, inputName: 'images', logitsName: 'logits', trainable: trainable.filter(trainableFilter), batchSize }).model.graph?.node ?? [];
  }

  for (const ruleCase of depthwiseCases) {
    test(`${ruleCase.name}, lowered by default`, () => {
      const operators = trainingNodes(ruleCase).map((graphNode) => graphNode.opType);
      assert.ok(!operators.includes('Conv'), `operators: ${operators.join(', ')}`);
      assert.ok(!operators.includes('ConvTranspose'), `operators: ${operators.join(', ')}`);
      assert.ok(operators.includes('MatMul'), `operators: ${operators.join(', ')}`);
    });
  }

  test('frozen depthwise weight keeps Conv', () => {
    const ruleCase = depthwiseCases[0];
    const operators = trainingNodes(ruleCase, (name) => name !== 'conv_weight').map((graphNode) => graphNode.opType);
    assert.ok(operators.includes('Conv'), `operators: ${operators.join(', ')}`);
  });

  test('matrix weight gradient needs batch 32', () => {
    // A 14x14 map has 38416 matrix entries: more than 1536 per image at batch 8, fewer at batch 32.
    const ruleCase = convolutionCase('depthwise 14x14', 4, 4, [3, 3], { group: 4, pads: [1, 1, 1, 1] }, 14, [14, 14], false);
    const usesMatrix = (batchSize: number) => {
      const { model, trainable } = buildCaseModel(ruleCase, seededRandom(5));
      const nodes = buildTrainingGraph({ forward: model, inputName: 'images', logitsName: 'logits', trainable, batchSize }).model.graph?.node ?? [];
      return nodes.some((graphNode) => (graphNode.output ?? []).some((name) => name.startsWith('conv_weight_matrix_grad')));
    };
    assert.equal(usesMatrix(8), false);
    assert.equal(usesMatrix(32), true);
  });

  test('map above lowering limit keeps Conv', () =>
    withFormulations({ depthwiseMatrixMaxEntriesPerImage: 1e9 }, 10, () => {
      const nodes = trainingNodes(depthwiseCases[0]);
      assert.ok(nodes.some((graphNode) => graphNode.opType === 'Conv' && (graphNode.input ?? [])[1] === 'conv_weight'));
      assert.ok(nodes.some((graphNode) => graphNode.opType === 'MatMul' && (graphNode.output ?? []).some((name) => name.startsWith('conv_weight_matrix_grad'))));
    }));
});
