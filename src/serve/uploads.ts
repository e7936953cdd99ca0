// Checks and decodes uploaded images, turning every problem into an HttpError with a clear message.
import sharp from 'sharp';
import { decodeEvalViewBuffer, ImageDecodeError, type RgbImage } from '../image/decode.js';
import { HttpError } from './errors.js';

/** Content types that the server decodes. SVG is left out because it is a document, not pixels. */
export const acceptedImageTypes = new Set([
  'image/jpeg',
  'image/pjpeg',
  'image/png',
  'image/webp',
  'image/gif',
  'image/tiff',
  'image/avif',
]);

const acceptedList = 'JPEG, PNG, WebP, GIF, TIFF or AVIF';

/** Returns the media type of a Content-Type header value: lower case, without parameters. */
export function mediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0].trim().toLowerCase();
}

/**
 * Checks the declared type of an uploaded file. Multipart parts may also be
 * application/octet-stream, which browsers and curl send for unknown file extensions; their content
 * decides.
 */
export function checkImageType(contentType: string | undefined, name: string, multipartPart: boolean): void {
  const type = mediaType(contentType);
  if (acceptedImageTypes.has(type) || (multipartPart && type === 'application/octet-stream')) {
    return;
  }
  const declared = type === '' ? 'no content type' : `content type ${type}`;
  throw new HttpError(415, 'unsupported-media-type', `${name} was sent with ${declared}. Send a ${acceptedList} image with its image/* content type, or as multipart/form-data.`);
}

async function declaredPixels(bytes: Uint8Array): Promise<string> {
  try {
    const metadata = await sharp(bytes, { limitInputPixels: false }).metadata();
    return `${metadata.width}x${metadata.height} = ${metadata.width * metadata.height} pixels`;
  } catch {
    return 'larger than the limit';
  }
}

/**
 * Decodes the evaluation view of an uploaded image. The pixel limit is checked against the size in the
 * file header before any pixel is decoded.
 */
export async function decodeUpload(bytes: Uint8Array, name: string, inputSize: number, maxPixels: number): Promise<RgbImage> {
  if (bytes.length === 0) {
    throw new HttpError(400, 'missing-image', `${name} is empty (0 bytes). Send the contents of an image file.`);
  }
  try {
    return await decodeEvalViewBuffer(bytes, name, inputSize, { maxPixels });
  } catch (error) {
    if (!(error instanceof ImageDecodeError)) {
      throw error;
    }
    switch (error.reason) {
      case 'too-many-pixels':
        throw new HttpError(413, 'too-many-pixels', `${name} is ${await declaredPixels(bytes)}, more than this server's limit of ${maxPixels} pixels. Send a smaller image.`);
      case 'unsupported-format':
        throw new HttpError(400, 'invalid-image', `${name} is not a ${acceptedList} image that the server can decode. Send the image in one of these formats.`);
      case 'empty':
        throw new HttpError(400, 'missing-image', `${name} is empty (0 bytes). Send the contents of an image file.`);
      default:
        throw new HttpError(400, 'invalid-image', `${name} could not be decoded because its data is truncated or corrupt. Send the complete, valid file.`);
    }
  }
}
