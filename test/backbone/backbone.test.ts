import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { BackboneError, FeatureExtractor, resolveBackbone } from '../../src/backbone/backbone.js';
import { parseChannelTriple, PreprocessingError } from '../../src/backbone/preprocessing.js';
import { seededRandom } from '../support/seededRandom.js';

// The compiled test runs from dist/test/backbone/, three levels below the repository root.
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const modelPath = path.resolve(repoRoot, '../shared/models/mobilenet_v2_1.0_224_imagenet.onnx');
const modelSha256 = 'f75fdc72b24cce563d0a2b8764e300b221c4402148cdc90f8ca179e2b65145b9';
const halfNormalization = { mean: [0.5, 0.5, 0.5] as [number, number, number], std: [0.5, 0.5, 0.5] as [number, number, number] };

let tempDir: string;

before(async () => {
  tempDir = await mkdtemp(path.join(tmpdir(), 'multitag-backbone-test-'));
});

after(async () => {
  await rm(tempDir, { recursive: true, force: true });
});


test('missing backbone path is named', async () => {
  const missing = path.join(tempDir, 'no-such-model.onnx');

  await assert.rejects(resolveBackbone({ source: missing }), BackboneError);
  await assert.rejects(resolveBackbone({ source: missing }), (error: Error) => error.message.includes(missing));
});

test('unknown normalisation suggests --mean and --std', async () => {
  await assert.rejects(resolveBackbone({ source: modelPath }), PreprocessingError);
  await assert.rejects(resolveBackbone({ source: modelPath }), /--mean/);
  await assert.rejects(resolveBackbone({ source: modelPath }), /--std/);
  await assert.rejects(resolveBackbone({ source: modelPath }), (error: Error) => error.message.includes(modelPath));
});

test('shared backbone resolves with flags', async () => {
  const backbone = await resolveBackbone({ source: modelPath, preprocessing: halfNormalization });

  assert.equal(backbone.path, modelPath);
  assert.equal(backbone.sha256, modelSha256);
  assert.equal(backbone.catalogName, undefined);
  assert.equal(backbone.inputName, 'input');
  assert.equal(backbone.featureName, 'features');
  assert.deepEqual(backbone.preprocessing, { inputSize: 224, ...halfNormalization });
});

test('metadata file beside model is used', async () => {
  const dir = await mkdtemp(path.join(tempDir, 'beside-'));
  const copy = path.join(dir, 'model.onnx');
  await copyFile(modelPath, copy);
  await writeFile(path.join(dir, 'model.json'), JSON.stringify({ inputSize: 192, mean: [0.4, 0.45, 0.5], std: [0.2, 0.25, 0.3] }));

  const fromFile = await resolveBackbone({ source: copy });

  assert.deepEqual(fromFile.preprocessing, { inputSize: 192, mean: [0.4, 0.45, 0.5], std: [0.2, 0.25, 0.3] });

  const overridden = await resolveBackbone({ source: copy, preprocessing: { mean: [0.1, 0.1, 0.1], inputSize: undefined } });

  assert.deepEqual(overridden.preprocessing.mean, [0.1, 0.1, 0.1], 'the flag wins over the file');
  assert.deepEqual(overridden.preprocessing.std, [0.2, 0.25, 0.3], 'unset flags keep the file value');
  assert.equal(overridden.preprocessing.inputSize, 192, 'an undefined flag does not clear the file value');
});

test('invalid metadata file is rejected', async () => {
  const dir = await mkdtemp(path.join(tempDir, 'invalid-'));
  const copy = path.join(dir, 'net.onnx');
  await copyFile(modelPath, copy);
  const metadataPath = path.join(dir, 'net.json');
  await writeFile(metadataPath, JSON.stringify({ mean: [0.5, 0.5], std: [0.5, 0.5, 0.5] }));

  await assert.rejects(resolveBackbone({ source: copy }), PreprocessingError);
  await assert.rejects(resolveBackbone({ source: copy }), (error: Error) => error.message.includes(metadataPath));
});

test('feature extractor matches full model', async () => {
  const backbone = await resolveBackbone({ source: modelPath, preprocessing: halfNormalization });
  const extractor = await FeatureExtractor.create(backbone, { threads: 2 });
  const reference = await ort.InferenceSession.create(modelPath, { intraOpNumThreads: 2 });
  try {
    const random = seededRandom(7);
    const imageSize = 3 * 224 * 224;
    const images = Float32Array.from({ length: 2 * imageSize }, () => random() * 2 - 1);

    const features = await extractor.run(images, 2);
    const expected = (await reference.run({ input: new ort.Tensor('float32', images, [2, 3, 224, 224]) })).features.data as Float32Array;

    assert.equal(extractor.featureSize, 1280);
    assert.equal(features.length, 2 * 1280);
    assert.equal(expected.length, features.length);
    let maxDifference = 0;
    for (let index = 0; index < features.length; index++) {
      maxDifference = Math.max(maxDifference, Math.abs(features[index] - expected[index]));
    }
    assert.ok(maxDifference <= 1e-5, `max difference ${maxDifference}`);
    assert.notDeepEqual(features.subarray(0, 1280), features.subarray(1280), 'two different images give different features');
  } finally {
    await extractor.release();
    await reference.release();
  }
});

test('mean on the 0..255 scale is rejected', () => {
  assert.throws(() => parseChannelTriple('127.5', '--mean', false), (error: unknown) => error instanceof PreprocessingError && /0\.\.1 pixel scale/.test(error.message) && /255/.test(error.message));
  assert.deepEqual(parseChannelTriple('0.5', '--mean', false), [0.5, 0.5, 0.5]);
});
