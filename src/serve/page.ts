// The web page at GET /: choose or drop images, see their labels and probabilities, and optionally run
// the model in the browser. The script is web/app.ts; the page loads nothing from other origins.
import { createHash } from 'node:crypto';

const pageStyle = `
:root { color-scheme: light dark; --accent: #2563eb; --muted: #6b7280; --line: #d1d5db; --on: #16a34a; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 68rem; padding: 1.5rem; }
h1 { font-size: 1.4rem; margin: 0 0 0.25rem; }
.muted { color: var(--muted); }
#controls { display: flex; flex-wrap: wrap; gap: 1rem; align-items: center; margin: 1rem 0; }
#drop { border: 2px dashed var(--line); border-radius: 0.5rem; padding: 1.25rem 1.5rem; flex: 1 1 20rem; text-align: center; }
#drop.over { border-color: var(--accent); background: color-mix(in srgb, var(--accent) 8%, transparent); }
.switch { display: inline-flex; gap: 0.5rem; align-items: center; cursor: pointer; user-select: none; }
#status[data-state="error"] { color: #dc2626; }
#thresholds { display: flex; flex-wrap: wrap; gap: 0.5rem 1rem; font-size: 0.9rem; }
#results { display: grid; grid-template-columns: repeat(auto-fill, minmax(20rem, 1fr)); gap: 1rem; margin-top: 1rem; }
.card { border: 1px solid var(--line); border-radius: 0.5rem; padding: 0.75rem; display: grid; grid-template-columns: 7rem 1fr; gap: 0.75rem; }
.card img { width: 7rem; height: 7rem; object-fit: cover; border-radius: 0.25rem; }
.card h2 { font-size: 0.9rem; margin: 0 0 0.25rem; overflow-wrap: anywhere; }
.chips { list-style: none; display: flex; flex-wrap: wrap; gap: 0.25rem; margin: 0 0 0.5rem; padding: 0; min-height: 1.5rem; }
.chip { background: var(--accent); color: white; border-radius: 999px; padding: 0 0.6rem; font-size: 0.85rem; }
.chip.none { background: transparent; color: var(--muted); padding: 0; }
.bar { display: grid; grid-template-columns: 6rem 1fr 3.5rem; gap: 0.4rem; align-items: center; font-size: 0.8rem; }
.track { position: relative; height: 0.6rem; background: color-mix(in srgb, var(--line) 60%, transparent); border-radius: 0.3rem; }
.fill { position: absolute; inset: 0 auto 0 0; background: var(--muted); border-radius: 0.3rem; }
.bar.on .fill { background: var(--on); }
.tick { position: absolute; top: -0.2rem; bottom: -0.2rem; width: 2px; background: currentColor; }
.error { color: #dc2626; grid-column: 1 / -1; }
`;

/** Content-Security-Policy of the page: only this server, plus what WebAssembly and its workers need. */
export const pageSecurityPolicy = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "worker-src 'self' blob:",
  `style-src 'self' 'sha256-${createHash('sha256').update(pageStyle).digest('base64')}'`,
  "img-src 'self' blob: data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** HTML of the page. */
export const pageHtml = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>multitag</title>
<link rel="icon" href="data:,">
<style>${pageStyle}</style>
</head>
<body>
<header>
<h1>multitag</h1>
<div id="model-summary" class="muted">Loading the model description...</div>
</header>
<section id="controls">
<label id="drop">Drop images here, or choose files: <input type="file" id="files" accept="image/*" multiple></label>
<label class="switch"><input type="checkbox" id="in-browser"> Run the model in this browser (onnxruntime-web)</label>
<span id="status" role="status" data-state="idle"></span>
</section>
<section>
<div class="muted">Thresholds (a label is shown when its probability is at or above its threshold):</div>
<div id="thresholds"></div>
</section>
<section id="results" aria-live="polite"></section>
<script type="module" src="/static/app.js"></script>
</body>
</html>
`;
