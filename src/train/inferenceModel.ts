// Builds the plain inference ONNX of a trained model: the backbone cut at its features, with any
// fine-tuned weights written back, followed by the linear head and a sigmoid.
import { cutAtTensor } from '../backbone/featureGraph.js';
import type { ResolvedBackbone } from '../backbone/backbone.js';
import { float32Tensor, float32ValueInfo, onnx, type ModelProto, type TensorProto } from '../onnx/model.js';
import type { ParameterSnapshot } from './callbacks.js';

/** Parameter names of the head inside snapshots and checkpoints. */
export const headWeightName = 'head.weight';
export const headBiasName = 'head.bias';

/** Names of the inference model's outputs. */
export const logitsOutput = 'logits';
export const probabilitiesOutput = 'probabilities';

/**
 * Builds the inference model. `parameters` contains the head (`head.weight` [labels, features] and
 * `head.bias`) and, after fine-tuning, new values for backbone initializers by name.
 */
export function buildInferenceModel(
  backbone: ResolvedBackbone,
  parameters: ParameterSnapshot,
  labelCount: number,
  featureSize: number,
  options: { probabilities?: boolean } = {},
): ModelProto {
  const withProbabilities = options.probabilities ?? true;
  const featureModel = cutAtTensor(backbone.model, backbone.featureName);
  const graph = featureModel.graph!;

  const initializers: TensorProto[] = (graph.initializer ?? []).map((tensor) => {
    const trained = parameters.get(tensor.name ?? '');
    return trained ? float32Tensor(tensor.name!, (tensor.dims ?? []).map(Number), trained) : tensor;
  });
  const weight = parameters.get(headWeightName);
  const bias = parameters.get(headBiasName);
  if (!weight || !bias) {
    throw new Error('buildInferenceModel needs head.weight and head.bias in the parameters');
  }
  initializers.push(float32Tensor(headWeightName, [labelCount, featureSize], weight));
  initializers.push(float32Tensor(headBiasName, [labelCount], bias));

  const flatFeatures = 'multitag_features';
  const nodes = [
    ...(graph.node ?? []),
    onnx.NodeProto.create({ name: 'multitag_flatten', opType: 'Flatten', input: [backbone.featureName], output: [flatFeatures], attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 1 }] }),
    onnx.NodeProto.create({
      name: 'multitag_head',
      opType: 'Gemm',
      input: [flatFeatures, headWeightName, headBiasName],
      output: [logitsOutput],
      attribute: [{ name: 'transB', type: onnx.AttributeProto.AttributeType.INT, i: 1 }],
    }),
  ];
  if (withProbabilities) {
    nodes.push(onnx.NodeProto.create({ name: 'multitag_sigmoid', opType: 'Sigmoid', input: [logitsOutput], output: [probabilitiesOutput] }));
  }
  const outputs = [float32ValueInfo(logitsOutput, ['batch', labelCount])];
  if (withProbabilities) {
    outputs.push(float32ValueInfo(probabilitiesOutput, ['batch', labelCount]));
  }

  // A batch dimension fixed at export time would limit callers to that batch size, so make it symbolic.
  const inputs = (graph.input ?? []).map((input) => {
    const copy = onnx.ValueInfoProto.decode(onnx.ValueInfoProto.encode(input).finish());
    const dims = copy.type?.tensorType?.shape?.dim;
    if (dims && dims.length > 0) {
      dims[0] = onnx.TensorShapeProto.Dimension.create({ dimParam: 'batch' });
    }
    return copy;
  });

  return onnx.ModelProto.create({
    ...featureModel,
    producerName: 'multitag',
    graph: onnx.GraphProto.create({
      ...graph,
      name: 'multitag_classifier',
      node: nodes,
      initializer: initializers,
      input: inputs,
      output: outputs,
      valueInfo: [],
    }),
  });
}
