// Server-side chart rendering: Chart.js draws on a skia canvas from @napi-rs/canvas, which encodes PNG.
import { createCanvas, GlobalFonts, type Canvas, type SKRSContext2D } from '@napi-rs/canvas';
import { Chart, registerables, type ChartConfiguration, type ChartType, type Plugin } from 'chart.js';

Chart.register(...registerables);

/** Width and height of a picture in pixels. */
export interface PictureSize {
  width: number;
  height: number;
}

/** Font stack for charts and the grid. Skia uses the first family that is installed. */
export const fontFamily = "'DejaVu Sans', 'Liberation Sans', Arial, Helvetica, sans-serif";
Chart.defaults.font.family = fontFamily;

/** Fills the canvas white before Chart.js draws, because a PNG with a transparent background is unreadable in dark viewers. */
const whiteBackground: Plugin = {
  id: 'multitagWhiteBackground',
  beforeDraw(chart) {
    const { ctx, width, height } = chart;
    ctx.save();
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(0, 0, width, height);
    ctx.restore();
  },
};

/**
 * Returns a warning when skia finds no font on this machine, because charts would then have no text.
 * Returns undefined when at least one font family is installed.
 */
export function missingFontWarning(): string | undefined {
  if (GlobalFonts.families.length > 0) {
    return undefined;
  }
  return 'No font is installed, so charts and the sanity grid render without text. Install one, for example with apt-get install fonts-dejavu-core.';
}

/** Creates a canvas with its 2-D context. */
export function createPicture(size: PictureSize): { canvas: Canvas; context: SKRSContext2D } {
  const canvas = createCanvas(size.width, size.height);
  return { canvas, context: canvas.getContext('2d') };
}

/**
 * Draws a Chart.js chart on a canvas of `size` and returns the canvas. Animation and responsiveness are
 * turned off, because there is no browser to animate in or resize.
 */
export function drawChart<Type extends ChartType>(configuration: ChartConfiguration<Type>, size: PictureSize): Canvas {
  const { canvas, context } = createPicture(size);
  const options = {
    ...configuration.options,
    animation: false,
    responsive: false,
    devicePixelRatio: 1,
  } as ChartConfiguration<Type>['options'];
  // Chart.js types its context as the browser's CanvasRenderingContext2D, whose API skia's context implements.
  const chart = new Chart(context as unknown as CanvasRenderingContext2D, {
    ...configuration,
    options,
    plugins: [whiteBackground as Plugin<Type>, ...(configuration.plugins ?? [])],
  });
  // destroy() clears the canvas, so the picture is copied first. Without destroy() Chart.js would keep
  // every chart in its instance registry.
  const copy = createPicture(size);
  copy.context.drawImage(canvas, 0, 0);
  chart.destroy();
  return copy.canvas;
}

/** Draws a chart and encodes it as PNG. */
export async function renderChart<Type extends ChartType>(configuration: ChartConfiguration<Type>, size: PictureSize): Promise<Buffer> {
  return drawChart(configuration, size).encode('png');
}

/** Places pictures in a grid of `columns`, each cell `cell` pixels, on a white canvas, and encodes it as PNG. */
export async function composePictures(pictures: readonly Canvas[], columns: number, cell: PictureSize): Promise<Buffer> {
  const rows = Math.max(1, Math.ceil(pictures.length / columns));
  const { canvas, context } = createPicture({ width: cell.width * Math.min(columns, Math.max(1, pictures.length)), height: cell.height * rows });
  context.fillStyle = '#ffffff';
  context.fillRect(0, 0, canvas.width, canvas.height);
  pictures.forEach((picture, index) => {
    context.drawImage(picture, (index % columns) * cell.width, Math.floor(index / columns) * cell.height);
  });
  return canvas.encode('png');
}
