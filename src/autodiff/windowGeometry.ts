// Sliding-window geometry shared by Conv, MaxPool and AveragePool: kernel, strides, dilations and
// explicit pads (auto_pad resolved), and the output size of each spatial axis.
import { type NodeProto, intAttribute, intsAttribute } from '../onnx/model.js';
import { describeNode, stringAttribute } from '../onnx/graph.js';

export interface WindowGeometry {
  kernel: number[];
  strides: number[];
  dilations: number[];
  /** Pads at the start of each spatial axis. */
  padsBegin: number[];
  /** Pads at the end of each spatial axis. */
  padsEnd: number[];
  /** Input size of each spatial axis. */
  inputSize: number[];
  /** Output size of each spatial axis. */
  outputSize: number[];
}

/**
 * Resolves the window attributes of a Conv, MaxPool or AveragePool node for an input of spatial size
 * `inputSize` and a kernel of spatial size `kernel`.
 */
export function windowGeometry(node: NodeProto, inputSize: readonly number[], kernel: readonly number[]): WindowGeometry {
  const rank = inputSize.length;
  if (inputSize.some((size) => size < 0)) {
    throw new Error(`${describeNode(node)} needs static spatial input sizes, got [${inputSize.join(', ')}]`);
  }
  const strides = intsAttribute(node, 'strides', new Array<number>(rank).fill(1));
  const dilations = intsAttribute(node, 'dilations', new Array<number>(rank).fill(1));
  const ceilMode = intAttribute(node, 'ceil_mode', 0) === 1;
  const autoPad = stringAttribute(node, 'auto_pad', 'NOTSET');
  const effectiveKernel = kernel.map((size, axis) => (size - 1) * dilations[axis] + 1);

  let padsBegin: number[];
  let padsEnd: number[];
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    padsBegin = [];
    padsEnd = [];
    for (let axis = 0; axis < rank; axis++) {
      const output = Math.ceil(inputSize[axis] / strides[axis]);
      const total = Math.max(0, (output - 1) * strides[axis] + effectiveKernel[axis] - inputSize[axis]);
      const small = Math.floor(total / 2);
      padsBegin.push(autoPad === 'SAME_UPPER' ? small : total - small);
      padsEnd.push(autoPad === 'SAME_UPPER' ? total - small : small);
    }
  } else if (autoPad === 'VALID') {
    padsBegin = new Array<number>(rank).fill(0);
    padsEnd = new Array<number>(rank).fill(0);
  } else {
    const pads = intsAttribute(node, 'pads', new Array<number>(2 * rank).fill(0));
    padsBegin = pads.slice(0, rank);
    padsEnd = pads.slice(rank, 2 * rank);
  }

  const outputSize = inputSize.map((size, axis) => {
    const span = size + padsBegin[axis] + padsEnd[axis] - effectiveKernel[axis];
    const steps = ceilMode ? Math.ceil(span / strides[axis]) : Math.floor(span / strides[axis]);
    let output = steps + 1;
    // With ceil_mode the last window must start inside the input or the begin padding (ONNX rule).
    if (ceilMode && (output - 1) * strides[axis] >= size + padsBegin[axis]) {
      output -= 1;
    }
    return output;
  });
  return { kernel: [...kernel], strides, dilations, padsBegin, padsEnd, inputSize: [...inputSize], outputSize };
}
