// Building blocks of the self-contained HTML pages: escaping, data URIs, thumbnails and the page frame.
// Pages link nothing outside themselves, so they work offline when opened from disk.
import sharp from 'sharp';
import { defaultMaxPixels } from '../image/decode.js';

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;').replaceAll("'", '&#39;');
}

/** Returns a data URI of PNG bytes. */
export function pngDataUri(png: Uint8Array): string {
  return `data:image/png;base64,${Buffer.from(png).toString('base64')}`;
}

/**
 * Returns a data URI of a JPEG thumbnail of an image file that fits in size x size, turned upright by
 * its EXIF orientation. Returns undefined when sharp cannot read the file, so one broken image does
 * not stop a report.
 */
export async function thumbnailDataUri(path: string, size = 200, maxPixels = defaultMaxPixels): Promise<string | undefined> {
  try {
    const jpeg = await sharp(path, { limitInputPixels: Number.isFinite(maxPixels) ? maxPixels : false })
      .rotate()
      .resize({ width: size, height: size, fit: 'inside', withoutEnlargement: true })
      .jpeg({ quality: 80 })
      .toBuffer();
    return `data:image/jpeg;base64,${jpeg.toString('base64')}`;
  } catch {
    return undefined;
  }
}

/** Formats a metric with four decimals, or "n/a" for NaN (such as AP of a label without positives). */
export function formatMetric(value: number): string {
  return Number.isNaN(value) ? 'n/a' : value.toFixed(4);
}

/** Builds a table from a header row and body rows whose cells are already HTML. */
export function htmlTable(header: readonly string[], rows: readonly (readonly string[])[], className = ''): string {
  const head = `<tr>${header.map((cell) => `<th>${cell}</th>`).join('')}</tr>`;
  const body = rows.map((row) => `<tr>${row.map((cell) => `<td>${cell}</td>`).join('')}</tr>`).join('\n');
  return `<table${className ? ` class="${className}"` : ''}><thead>${head}</thead><tbody>\n${body}\n</tbody></table>`;
}

const styles = `
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, 'Segoe UI', 'DejaVu Sans', sans-serif; margin: 0 auto; max-width: 1400px; padding: 1.5rem; color: #24292f; background: #fff; line-height: 1.45; }
h1 { font-size: 1.6rem; margin: 0 0 .3rem; }
h2 { font-size: 1.25rem; margin: 2rem 0 .6rem; padding-bottom: .3rem; border-bottom: 1px solid #d0d7de; }
nav a { margin-right: 1rem; }
.muted { color: #57606a; }
table { border-collapse: collapse; margin: .5rem 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d0d7de; padding: .25rem .6rem; text-align: right; }
th { background: #f6f8fa; }
td:first-child, th:first-child { text-align: left; white-space: nowrap; }
img.picture { max-width: 100%; height: auto; border: 1px solid #d0d7de; }
details pre { background: #f6f8fa; padding: .8rem; overflow: auto; font-size: .85rem; }
.suspects { display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)); gap: 1rem; }
.suspect { margin: 0; border: 1px solid #d0d7de; border-radius: 6px; padding: .6rem; }
.suspect img { display: block; margin: 0 auto .4rem; max-width: 100%; }
.suspect .verdict { font-weight: bold; color: #cf222e; }
.suspect table { width: 100%; font-size: .85rem; }
tr.disagree td { background: #ffebe9; font-weight: bold; }
.matrix td { min-width: 3.5rem; }
.settings td { text-align: left; }
`;

/** Wraps a body into a complete HTML page with the shared inline styles and no external resources. */
export function htmlPage(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>${escapeHtml(title)}</title>
<style>${styles}</style>
</head>
<body>
${body}
</body>
</html>
`;
}
