// Rewrites forward nodes from older ONNX opsets into their opset-17 form, so one training graph can
// mix them with backward nodes that use opset-17 operators (ScatterElements with reduction, ReduceSum
// with an axes input).
import { type NodeProto, type TensorProto, float32Tensor, int64Tensor, intsAttribute, onnx } from '../onnx/model.js';
import { describeNode, findAttribute, floatAttribute } from '../onnx/graph.js';

/** Opset of the default domain that training graphs use unless the forward model's is newer. */
export const TRAINING_OPSET = 17;

export interface UpgradedNodes {
  nodes: NodeProto[];
  /** Initializers created for attributes that became inputs. */
  initializers: TensorProto[];
}

function withoutAttributes(node: NodeProto, names: readonly string[], inputs: readonly string[]): NodeProto {
  return onnx.NodeProto.create({
    ...node,
    input: [...inputs],
    attribute: (node.attribute ?? []).filter((attribute) => !names.includes(attribute.name ?? '')),
  });
}

/**
 * Converts the attribute forms that changed between `opset` and opset 17 for Clip (min/max before
 * 11), Squeeze, Unsqueeze and ReduceSum (axes before 13), and drops BatchNormalization and Dropout
 * attributes that later opsets removed. Other nodes pass through unchanged. Throws for a Reshape that
 * takes its shape from an attribute (opset 1 to 4).
 */
export function upgradeNodes(nodes: readonly NodeProto[], opset: number, freshName: (hint: string) => string): UpgradedNodes {
  if (opset >= 13) {
    return { nodes: [...nodes], initializers: [] };
  }
  const initializers: TensorProto[] = [];
  const upgraded = nodes.map((node) => {
    const inputs = node.input ?? [];
    switch (node.opType) {
      case 'Clip': {
        if (opset >= 11) {
          return node;
        }
        const bound = (name: string): string => {
          if (!findAttribute(node, name)) {
            return '';
          }
          const tensorName = freshName(`${node.name || 'clip'}_${name}`);
          initializers.push(float32Tensor(tensorName, [], Float32Array.of(floatAttribute(node, name, 0))));
          return tensorName;
        };
        return withoutAttributes(node, ['min', 'max'], [inputs[0], bound('min'), bound('max')]);
      }
      case 'Squeeze':
      case 'Unsqueeze':
      case 'ReduceSum': {
        const axesAttribute = findAttribute(node, 'axes');
        if (!axesAttribute) {
          return node;
        }
        const axes = intsAttribute(node, 'axes', []);
        const axesName = freshName(`${node.name || node.opType}_axes`);
        initializers.push(int64Tensor(axesName, [axes.length], axes));
        return withoutAttributes(node, ['axes'], [inputs[0], axesName]);
      }
      case 'BatchNormalization':
        return withoutAttributes(node, ['spatial', 'is_test', 'consumed_inputs'], inputs);
      case 'Dropout':
        return withoutAttributes(node, ['ratio', 'is_test'], [inputs[0]]);
      case 'Reshape':
        if (findAttribute(node, 'shape')) {
          throw new Error(`${describeNode(node)} takes its shape from an attribute (opset 4 or older); convert the model to opset 13 or newer`);
        }
        return node;
      default:
        return node;
    }
  });
  return { nodes: upgraded, initializers };
}
