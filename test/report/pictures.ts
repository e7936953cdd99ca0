// Pixel helpers for checking rendered PNG pictures.
import sharp from 'sharp';

/** RGB pixels of a decoded picture, row-major. */
export interface DecodedPicture {
  width: number;
  height: number;
  data: Buffer;
}

/** Decodes a PNG into RGB pixels, dropping any alpha channel. */
export async function decodePng(png: Uint8Array): Promise<DecodedPicture> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data };
}

/** Returns the RGB value at (x, y). */
export function pixel(picture: DecodedPicture, x: number, y: number): [number, number, number] {
  const offset = (y * picture.width + x) * 3;
  return [picture.data[offset], picture.data[offset + 1], picture.data[offset + 2]];
}

/** Counts clearly green and clearly red pixels in a rectangle. */
export function titleColors(picture: DecodedPicture, x: number, y: number, width: number, height: number): { green: number; red: number } {
  let green = 0;
  let red = 0;
  for (let row = y; row < y + height; row++) {
    for (let column = x; column < x + width; column++) {
      const [r, g, b] = pixel(picture, column, row);
      if (g > r + 50 && g > b + 20) {
        green += 1;
      }
      if (r > g + 80 && r > b + 50) {
        red += 1;
      }
    }
  }
  return { green, red };
}

