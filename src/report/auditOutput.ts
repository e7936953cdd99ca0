// Output of the mislabel finder: a CSV of every scored (image, label) pair and an HTML gallery of the
// top suspects with embedded thumbnails.
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../files/atomic.js';
import { describeSuspect, formatProbability, type AuditedImage, type LabelAudit } from './audit.js';
import { escapeHtml, formatMetric, htmlPage, htmlTable, thumbnailDataUri } from './html.js';
import { mapConcurrent } from '../train/parallel.js';

/** Default number of suspects shown in the gallery. */
export const defaultSuspectCount = 30;

/** Column names of the audit CSV. */
export const auditCsvColumns = ['rank', 'file', 'split', 'label', 'given', 'probability', 'score'] as const;

function csvCell(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/**
 * Formats the audit as CSV: one row per (image, label), images in rank order (1 is the most suspicious)
 * and each image's labels from the highest score down. The score is the binary cross-entropy of the
 * given label under the out-of-sample probability, in nats.
 */
export function auditCsv(audit: LabelAudit): string {
  const lines = [auditCsvColumns.join(',')];
  audit.images.forEach((image, index) => {
    const labelOrder = audit.labels.map((_, label) => label).sort((a, b) => image.scores[b] - image.scores[a]);
    for (const label of labelOrder) {
      lines.push(
        [String(index + 1), csvCell(image.file), image.split, csvCell(audit.labels[label]), String(image.given[label]), image.probabilities[label].toPrecision(6), image.scores[label].toPrecision(6)].join(','),
      );
    }
  });
  return `${lines.join('\n')}\n`;
}

/** Returns the HTML of one suspect's card. `thumbnail` is a data URI, or undefined when the image could not be read. */
function suspectCard(image: AuditedImage, rank: number, labels: readonly string[], thumbnail: string | undefined): string {
  const rows = labels.map((label, index) => {
    const disagrees = Math.abs(image.probabilities[index] - image.given[index]) > 0.5;
    return `<tr${disagrees ? ' class="disagree"' : ''}><td>${escapeHtml(label)}</td><td>${image.given[index]}</td><td>${formatProbability(image.probabilities[index])}</td></tr>`;
  });
  const picture = thumbnail ? `<img src="${thumbnail}" alt="${escapeHtml(image.file)}">` : '<p class="muted">(image could not be read)</p>';
  return `<figure class="suspect" title="${escapeHtml(image.path)}">
${picture}
<figcaption>
<div>#${rank} &middot; ${image.split} &middot; ${escapeHtml(image.file)}</div>
<div class="verdict">${escapeHtml(describeSuspect(image, labels))}</div>
<table><thead><tr><th>label</th><th>given</th><th>model</th></tr></thead><tbody>${rows.join('')}</tbody></table>
</figcaption>
</figure>`;
}

/**
 * Returns the HTML of the top `count` suspects as a gallery with embedded thumbnails, with a sentence
 * on how the probabilities were made.
 */
export async function suspectGalleryHtml(audit: LabelAudit, count = defaultSuspectCount, maxPixels?: number): Promise<string> {
  const suspects = audit.images.slice(0, count);
  const thumbnails = await mapConcurrent(suspects, 4, (image) => thumbnailDataUri(image.path, 200, maxPixels));
  const { folds, epochs, learningRate } = audit.settings;
  const explanation =
    `<p class="muted">Each probability comes from a linear head that never saw the image: ${folds}-fold cross-validation over both splits ` +
    `(${audit.images.length} images), ${epochs} epochs of AdamW at learning rate ${learningRate} on cached pooled backbone features. ` +
    `Images are ranked by the binary cross-entropy of their worst label. Out-of-fold micro-F1 ${formatMetric(audit.outOfFoldMetrics.microF1)}, ` +
    `mAP ${formatMetric(audit.outOfFoldMetrics.mAP)}. Highlighted rows are labels where given label and probability are more than 0.5 apart.</p>`;
  const cards = suspects.map((image, index) => suspectCard(image, index + 1, audit.labels, thumbnails[index]));
  return `${explanation}\n<div class="suspects">\n${cards.join('\n')}\n</div>`;
}

/** Returns a table counting, per label, how many of the top `count` suspects have it as their worst label. */
export function suspectLabelTable(audit: LabelAudit, count = defaultSuspectCount): string {
  const suspects = audit.images.slice(0, count);
  const rows = audit.labels.map((label, index) => {
    const worst = suspects.filter((image) => image.worstLabel === index);
    const missing = worst.filter((image) => image.given[index] === 1).length;
    return [escapeHtml(label), String(worst.length), String(missing), String(worst.length - missing)];
  });
  return htmlTable(['label', 'suspects', 'given 1, model says 0', 'given 0, model says 1'], rows);
}

/** Output paths and gallery settings of {@link writeAuditOutputs}. */
export interface AuditOutputOptions {
  htmlPath: string;
  csvPath: string;
  /** Suspects shown in the gallery. */
  count?: number;
  /** Title line naming the run and data folder. */
  title: string;
  maxPixels?: number;
}

/** Writes the gallery page and the CSV atomically. */
export async function writeAuditOutputs(audit: LabelAudit, options: AuditOutputOptions): Promise<void> {
  const count = options.count ?? defaultSuspectCount;
  const body = `<h1>${escapeHtml(options.title)}</h1>
<p>The ${Math.min(count, audit.images.length)} images whose given labels the model contradicts most confidently. All ${audit.images.length} images and their scores are in <code>${escapeHtml(options.csvPath)}</code>.</p>
${suspectLabelTable(audit, count)}
${await suspectGalleryHtml(audit, count, options.maxPixels)}`;
  await mkdir(dirname(options.htmlPath), { recursive: true });
  await mkdir(dirname(options.csvPath), { recursive: true });
  await writeFileAtomic(options.csvPath, auditCsv(audit));
  await writeFileAtomic(options.htmlPath, htmlPage(options.title, body));
}
