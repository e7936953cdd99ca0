// Reads and writes ONNX models with the protobuf classes of the onnx-proto package, and converts
// initializers between TensorProto and typed arrays.
import { readFile } from 'node:fs/promises';
import onnxProto from 'onnx-proto';

export const onnx = onnxProto.onnx;
export type ModelProto = onnxProto.onnx.ModelProto;
export type GraphProto = onnxProto.onnx.IGraphProto;
export type NodeProto = onnxProto.onnx.INodeProto;
export type TensorProto = onnxProto.onnx.ITensorProto;
export type AttributeProto = onnxProto.onnx.IAttributeProto;
export type ValueInfoProto = onnxProto.onnx.IValueInfoProto;

/** Element type codes of TensorProto.DataType that multitag reads and writes. */
export const DataType = onnxProto.onnx.TensorProto.DataType;

/** Error for a file that is not a readable ONNX model. */
export class OnnxFormatError extends Error {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`${path} is not a valid ONNX model: ${reason}. Check that the file is a complete .onnx export.`);
    this.name = 'OnnxFormatError';
  }
}

/** Decodes ONNX bytes. Initializer raw data stays a view into `bytes`, so keep `bytes` unchanged. */
export function decodeModel(bytes: Uint8Array, path = '<memory>'): ModelProto {
  let model: ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (error) {
    throw new OnnxFormatError(path, (error as Error).message);
  }
  if (!model.graph || model.graph.node == null || model.graph.node.length === 0) {
    throw new OnnxFormatError(path, 'the model has no graph nodes');
  }
  return model;
}

/** Reads and decodes an ONNX file. */
export async function readModel(path: string): Promise<ModelProto> {
  const bytes = await readFile(path);
  return decodeModel(bytes, path);
}

/** Encodes a model to ONNX bytes. */
export function encodeModel(model: ModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}

/** Converts an int64 field (number or protobufjs Long) to a number. */
export function toNumber(value: number | { toNumber(): number } | null | undefined): number {
  if (value == null) {
    return 0;
  }
  return typeof value === 'number' ? value : value.toNumber();
}

/** Returns a tensor's shape as plain numbers. */
export function tensorDims(tensor: TensorProto): number[] {
  return (tensor.dims ?? []).map((dim) => toNumber(dim));
}

/**
 * Returns the float32 values of an initializer. Data stored as raw bytes is copied once into an
 * aligned Float32Array because protobuf views are not 4-byte aligned in general.
 */
export function tensorToFloat32(tensor: TensorProto): Float32Array {
  if (tensor.dataType !== DataType.FLOAT) {
    throw new Error(`tensor ${tensor.name} has data type ${tensor.dataType}, expected FLOAT (1)`);
  }
  const raw = tensor.rawData;
  if (raw && raw.length > 0) {
    const copy = new Uint8Array(raw.length);
    copy.set(raw);
    return new Float32Array(copy.buffer, 0, raw.length / 4);
  }
  return Float32Array.from(tensor.floatData ?? []);
}

/** Returns the int64 values of an initializer as numbers. */
export function tensorToInt64(tensor: TensorProto): number[] {
  const raw = tensor.rawData;
  if (raw && raw.length > 0) {
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const values: number[] = [];
    for (let offset = 0; offset < raw.byteLength; offset += 8) {
      values.push(Number(view.getBigInt64(offset, true)));
    }
    return values;
  }
  return (tensor.int64Data ?? []).map((value) => toNumber(value));
}

/** Builds a float32 initializer that stores `values` as raw little-endian bytes. */
export function float32Tensor(name: string, dims: readonly number[], values: Float32Array): TensorProto {
  return onnx.TensorProto.create({
    name,
    dims: [...dims],
    dataType: DataType.FLOAT,
    rawData: new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
  });
}

/** Builds an int64 initializer. */
export function int64Tensor(name: string, dims: readonly number[], values: readonly number[]): TensorProto {
  const bytes = new Uint8Array(values.length * 8);
  const view = new DataView(bytes.buffer);
  values.forEach((value, index) => view.setBigInt64(index * 8, BigInt(value), true));
  return onnx.TensorProto.create({ name, dims: [...dims], dataType: DataType.INT64, rawData: bytes });
}

/** Builds a float32 value info with a fixed or symbolic shape, or with no shape when it is omitted. */
export function float32ValueInfo(name: string, shape?: readonly (number | string)[]): ValueInfoProto {
  const dims = shape?.map((dim) => (typeof dim === 'number' ? { dimValue: dim } : { dimParam: dim }));
  return onnx.ValueInfoProto.create({
    name,
    type: { tensorType: dims ? { elemType: DataType.FLOAT, shape: { dim: dims } } : { elemType: DataType.FLOAT } },
  });
}

/** Returns the declared shape of a value info; symbolic or unknown dimensions come back as -1. */
export function valueInfoShape(info: ValueInfoProto): number[] {
  const dims = info.type?.tensorType?.shape?.dim ?? [];
  return dims.map((dim) => (dim.dimValue != null && toNumber(dim.dimValue) > 0 ? toNumber(dim.dimValue) : -1));
}

/** Returns the opset version of the default ONNX domain. */
export function defaultOpsetVersion(model: ModelProto): number {
  const entry = (model.opsetImport ?? []).find((opset) => !opset.domain || opset.domain === 'ai.onnx');
  return entry ? toNumber(entry.version) : 0;
}

/** Reads an integer attribute of a node, or returns `fallback` when it is absent. */
export function intAttribute(node: NodeProto, name: string, fallback: number): number {
  const attribute = (node.attribute ?? []).find((candidate) => candidate.name === name);
  return attribute ? toNumber(attribute.i) : fallback;
}

/** Reads an integer-list attribute of a node, or returns `fallback` when it is absent. */
export function intsAttribute(node: NodeProto, name: string, fallback: number[]): number[] {
  const attribute = (node.attribute ?? []).find((candidate) => candidate.name === name);
  return attribute ? (attribute.ints ?? []).map((value) => toNumber(value)) : fallback;
}
