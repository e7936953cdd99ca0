import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cutAtTensor, findFeatureTensor, FeatureTensorError } from '../../src/backbone/featureGraph.js';
import { float32Tensor, float32ValueInfo, int64Tensor, onnx, readModel, type ModelProto, type NodeProto, type TensorProto } from '../../src/onnx/model.js';

// The compiled test runs from dist/test/backbone/, three levels below the repository root.
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const modelPath = path.resolve(repoRoot, '../shared/models/mobilenet_v2_1.0_224_imagenet.onnx');

let mobilenet: ModelProto;

before(async () => {
  mobilenet = await readModel(modelPath);
});

function smallModel(nodes: NodeProto[], initializers: TensorProto[], output: string): ModelProto {
  return onnx.ModelProto.create({
    irVersion: 7,
    opsetImport: [{ domain: '', version: 13 }],
    graph: onnx.GraphProto.create({
      name: 'small',
      node: nodes,
      initializer: initializers,
      input: [float32ValueInfo('image', [1, 4, 3, 3])],
      output: [float32ValueInfo(output)],
    }),
  });
}

/** Builds a small classifier: Conv -> GlobalAveragePool -> Reshape -> Gemm. */
function reshapeClassifier(): ModelProto {
  return smallModel(
    [
      onnx.NodeProto.create({ name: 'conv', opType: 'Conv', input: ['image', 'conv_w'], output: ['conv_out'] }),
      onnx.NodeProto.create({ name: 'pool', opType: 'GlobalAveragePool', input: ['conv_out'], output: ['pooled'] }),
      onnx.NodeProto.create({ name: 'reshape', opType: 'Reshape', input: ['pooled', 'shape'], output: ['flat'] }),
      onnx.NodeProto.create({ name: 'fc', opType: 'Gemm', input: ['flat', 'fc_w', 'fc_b'], output: ['scores'], attribute: [{ name: 'transB', type: onnx.AttributeProto.AttributeType.INT, i: 1 }] }),
    ],
    [
      float32Tensor('conv_w', [4, 4, 1, 1], new Float32Array(16).fill(0.5)),
      int64Tensor('shape', [2], [1, 4]),
      float32Tensor('fc_w', [2, 4], new Float32Array(8).fill(1)),
      float32Tensor('fc_b', [2], new Float32Array(2)),
    ],
    'scores',
  );
}

test('feature tensor of shared model', () => {
  assert.equal(findFeatureTensor(mobilenet, modelPath), 'features');
});

test('feature tensor after Reshape', () => {
  assert.equal(findFeatureTensor(reshapeClassifier(), 'small.onnx'), 'flat');
});

test('feature tensor without Flatten', () => {
  const model = smallModel(
    [
      onnx.NodeProto.create({ name: 'pool', opType: 'GlobalMaxPool', input: ['image'], output: ['pooled'] }),
      onnx.NodeProto.create({ name: 'relu', opType: 'Relu', input: ['pooled'], output: ['activated'] }),
    ],
    [],
    'activated',
  );

  assert.equal(findFeatureTensor(model, 'small.onnx'), 'pooled');
});

test('graph without pooling lists candidates', () => {
  const model = smallModel(
    [
      onnx.NodeProto.create({ name: 'relu', opType: 'Relu', input: ['image'], output: ['activated'] }),
      onnx.NodeProto.create({ name: 'flatten', opType: 'Flatten', input: ['activated'], output: ['flat'] }),
      onnx.NodeProto.create({ name: 'fc', opType: 'Gemm', input: ['flat', 'fc_w'], output: ['scores'] }),
    ],
    [float32Tensor('fc_w', [36, 2], new Float32Array(72))],
    'scores',
  );

  assert.throws(() => findFeatureTensor(model, 'nopool.onnx'), FeatureTensorError);
  assert.throws(() => findFeatureTensor(model, 'nopool.onnx'), /nopool\.onnx/);
  assert.throws(() => findFeatureTensor(model, 'nopool.onnx'), /--feature-node/);
  for (const candidate of ['activated', 'flat', 'scores']) {
    assert.throws(() => findFeatureTensor(model, 'nopool.onnx'), new RegExp(`\\b${candidate} \\(`), `candidate ${candidate} is listed`);
  }
});

test('feature node by tensor name', () => {
  assert.equal(findFeatureTensor(mobilenet, modelPath, 'gap'), 'gap');
  assert.equal(findFeatureTensor(mobilenet, modelPath, 'conv51_relu6'), 'conv51_relu6');
});

test('feature node by node name', () => {
  assert.equal(findFeatureTensor(mobilenet, modelPath, 'flatten_features'), 'features');
});

test('unknown feature node is rejected', () => {
  assert.throws(() => findFeatureTensor(mobilenet, modelPath, 'no_such_tensor'), FeatureTensorError);
  assert.throws(() => findFeatureTensor(mobilenet, modelPath, 'no_such_tensor'), /no_such_tensor/);
});

test('cut keeps only needed parts', () => {
  const cut = cutAtTensor(mobilenet, 'features');
  const graph = cut.graph!;
  const nodeNames = new Set((graph.node ?? []).map((node) => node.name));
  const initializerNames = new Set((graph.initializer ?? []).map((tensor) => tensor.name));

  assert.ok(!initializerNames.has('conv52_w'), 'classifier weight conv52_w is removed');
  assert.ok(!initializerNames.has('conv52_b'), 'classifier bias conv52_b is removed');
  assert.ok(!nodeNames.has('conv52'), 'classifier node is removed');
  assert.ok(!nodeNames.has('flatten_logits'), 'logits Flatten is removed');
  assert.ok(nodeNames.has('gap'), 'pooling node is kept');
  assert.ok(initializerNames.has('conv51_w'), 'last backbone conv weight is kept');
  assert.equal(graph.node!.length, mobilenet.graph!.node!.length - 2);
  assert.equal(graph.initializer!.length, mobilenet.graph!.initializer!.length - 2);
  assert.deepEqual((graph.output ?? []).map((output) => output.name), ['features']);
  assert.deepEqual((graph.input ?? []).map((input) => input.name), ['input']);
});

test('cut drops unused branches', () => {
  const cut = cutAtTensor(reshapeClassifier(), 'pooled');
  const graph = cut.graph!;

  assert.deepEqual((graph.node ?? []).map((node) => node.name), ['conv', 'pool']);
  assert.deepEqual((graph.initializer ?? []).map((tensor) => tensor.name), ['conv_w']);
  assert.deepEqual((graph.output ?? []).map((output) => output.name), ['pooled']);
});

test('cut leaves source model unchanged', () => {
  const nodeCount = mobilenet.graph!.node!.length;
  const initializerCount = mobilenet.graph!.initializer!.length;

  cutAtTensor(mobilenet, 'gap');

  assert.equal(mobilenet.graph!.node!.length, nodeCount);
  assert.equal(mobilenet.graph!.initializer!.length, initializerCount);
  assert.deepEqual(mobilenet.graph!.output!.map((output) => output.name), ['features', 'logits']);
});
