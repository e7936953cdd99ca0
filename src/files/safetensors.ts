// Reads and writes the safetensors format (an 8-byte little-endian header length, a JSON header
// mapping names to dtype, shape and byte offsets, then the raw little-endian data), so checkpoints
// can also be opened by the `safetensors` Python package.
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from './atomic.js';

/** Named float32 tensors with their shapes. */
export interface TensorEntry {
  shape: number[];
  data: Float32Array;
}

/** A safetensors file's tensors and its string metadata. */
export interface SafetensorsContent {
  tensors: Map<string, TensorEntry>;
  metadata: Record<string, string>;
}

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** Error for a file that is not a complete safetensors file. */
export class SafetensorsFormatError extends Error {
  constructor(path: string, reason: string) {
    super(`${path} is not a valid safetensors file: ${reason}. The file may be truncated; use another checkpoint or retrain.`);
    this.name = 'SafetensorsFormatError';
  }
}

/** Encodes tensors and metadata into the byte chunks of one safetensors file. */
export function encodeSafetensors(content: SafetensorsContent): Uint8Array[] {
  const header: Record<string, HeaderEntry | Record<string, string>> = { __metadata__: content.metadata };
  let offset = 0;
  for (const [name, tensor] of content.tensors) {
    const elementCount = tensor.shape.reduce((product, dim) => product * dim, 1);
    if (elementCount !== tensor.data.length) {
      throw new RangeError(`safetensors tensor ${name} has shape [${tensor.shape.join(', ')}] but ${tensor.data.length} values`);
    }
    const byteLength = tensor.data.length * 4;
    header[name] = { dtype: 'F32', shape: tensor.shape, data_offsets: [offset, offset + byteLength] };
    offset += byteLength;
  }

  // The header is padded with spaces to a multiple of 8 bytes so the data that follows stays aligned.
  let headerText = JSON.stringify(header);
  headerText += ' '.repeat((8 - (Buffer.byteLength(headerText) % 8)) % 8);
  const headerBytes = Buffer.from(headerText, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerBytes.length));

  const chunks: Uint8Array[] = [prefix, headerBytes];
  for (const tensor of content.tensors.values()) {
    chunks.push(new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength));
  }
  return chunks;
}

/** Decodes a safetensors file's bytes; tensor data is copied into aligned Float32Arrays. */
export function decodeSafetensors(bytes: Uint8Array, path: string): SafetensorsContent {
  if (bytes.length < 8) {
    throw new SafetensorsFormatError(path, 'it is shorter than its 8-byte header length');
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (8 + headerLength > bytes.length) {
    throw new SafetensorsFormatError(path, `its header claims ${headerLength} bytes but the file has ${bytes.length}`);
  }

  let header: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + headerLength)).toString('utf8')) as Record<string, unknown>;
  } catch (error) {
    throw new SafetensorsFormatError(path, `its JSON header does not parse (${(error as Error).message})`);
  }

  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new SafetensorsFormatError(path, 'its header is not a JSON object');
  }

  const dataStart = 8 + headerLength;
  const tensors = new Map<string, TensorEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = value as Record<string, string>;
      continue;
    }
    const entry = value as HeaderEntry;
    if (entry.dtype !== 'F32') {
      throw new SafetensorsFormatError(path, `tensor ${name} has dtype ${entry.dtype}; only F32 is supported`);
    }
    const offsets: unknown = entry.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((offset) => Number.isSafeInteger(offset) && offset >= 0) || offsets[0] > offsets[1]) {
      throw new SafetensorsFormatError(path, `tensor ${name} has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (dataStart + end > bytes.length) {
      throw new SafetensorsFormatError(path, `tensor ${name} lies beyond the end of the file`);
    }
    const shape = entry.shape;
    if (!Array.isArray(shape) || !shape.every((dim) => Number.isSafeInteger(dim) && dim >= 0)) {
      throw new SafetensorsFormatError(path, `tensor ${name} has invalid shape ${JSON.stringify(shape)}`);
    }
    const elementCount = shape.reduce((product, dim) => product * dim, 1);
    if (end - begin !== elementCount * 4) {
      throw new SafetensorsFormatError(path, `tensor ${name} of shape [${shape.join(', ')}] needs ${elementCount * 4} bytes but has ${end - begin}`);
    }
    const copy = new Uint8Array(end - begin);
    copy.set(bytes.subarray(dataStart + begin, dataStart + end));
    tensors.set(name, { shape: entry.shape, data: new Float32Array(copy.buffer) });
  }
  return { tensors, metadata };
}

/** Writes a safetensors file atomically. */
export async function writeSafetensors(path: string, content: SafetensorsContent): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(content));
}

/** Reads a safetensors file. */
export async function readSafetensors(path: string): Promise<SafetensorsContent> {
  return decodeSafetensors(await readFile(path), path);
}
