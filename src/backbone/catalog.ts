// Named backbones that `--backbone NAME` resolves to a download URL, a checksum and preprocessing.
import type { Preprocessing } from './preprocessing.js';

/** A backbone that multitag can download by name. */
export interface CatalogEntry {
  /** Name used on the command line, for example `mobilenet_v2`. */
  name: string;
  /** Human-readable description with the source of the weights. */
  description: string;
  /** HTTPS address of the ONNX file. */
  url: string;
  /** Lower-case hex SHA-256 of the file; a download with another hash is rejected. */
  sha256: string;
  /** Size of the file in bytes, used for the progress bar when the server sends no length. */
  bytes: number;
  /** Input size and normalisation the weights were trained with. */
  preprocessing: Preprocessing;
}

/**
 * The catalog. The MobileNetV2 entry is the ONNX Model Zoo's `mobilenetv2-7.onnx` (opset 7, torchvision
 * weights, ImageNet normalisation). Its hash and size are those of the Git LFS object in the onnx/models
 * repository.
 */
// NOTE: the download from this URL has not been run, because the machine this was written on has no
// internet. The download code itself is tested against a local server.
export const catalog: readonly CatalogEntry[] = [
  {
    name: 'mobilenet_v2',
    description: 'ImageNet MobileNetV2 1.0/224 from the ONNX Model Zoo (mobilenetv2-7.onnx)',
    url: 'https://github.com/onnx/models/raw/main/validated/vision/classification/mobilenet/model/mobilenetv2-7.onnx',
    sha256: 'c1c513582d56afceff8516c73804e484c81c6a830712ab6d682253f4a3cd042f',
    bytes: 14_246_826,
    preprocessing: {
      inputSize: 224,
      mean: [0.485, 0.456, 0.406],
      std: [0.229, 0.224, 0.225],
    },
  },
];

/** Returns the catalog entry called `name`, or undefined. */
export function findCatalogEntry(name: string, entries: readonly CatalogEntry[] = catalog): CatalogEntry | undefined {
  return entries.find((entry) => entry.name === name);
}
