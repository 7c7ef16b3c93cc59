// A grouped horizontal bar chart as a standalone SVG string: for each row, kvfabric vs its reference, with the
// ratio printed and the target marked. No dependencies; the output renders in browsers and on GitHub.

export interface BarRow {
  label: string;
  kvfabric: number;
  reference: number;
  /** The DESIGN §8 target ratio, when there is one. */
  target?: number;
  /** The ratio the bench reported (e.g. a median of per-run ratios); default kvfabric / reference. */
  ratio?: number;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const fmt = (n: number) =>
  n >= 1000 ? n.toLocaleString('en-US', { maximumFractionDigits: 0 }) : n >= 10 ? n.toFixed(1) : n.toFixed(2);

export function barChart(title: string, unit: string, rows: BarRow[]): string {
  const labelW = 260;
  const barW = 420;
  const rowH = 46;
  const top = 48;
  const width = labelW + barW + 230;
  const height = top + rows.length * rowH + 36;
  const max = Math.max(...rows.flatMap((r) => [r.kvfabric, r.reference]), 1e-9);
  const x = (v: number) => labelW + (v / max) * barW;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="12" y="22" font-size="15" font-weight="bold">${esc(title)}</text>`,
    `<rect x="${labelW}" y="30" width="10" height="10" fill="#2b6cb0"/><text x="${labelW + 14}" y="39">kvfabric</text>`,
    `<rect x="${labelW + 80}" y="30" width="10" height="10" fill="#a0aec0"/><text x="${labelW + 94}" y="39">reference</text>`,
    `<text x="${labelW + 180}" y="39" fill="#555">${esc(unit)}</text>`,
  ];
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    const ratio = r.ratio ?? (r.reference > 0 ? r.kvfabric / r.reference : NaN);
    const miss = r.target !== undefined && ratio < r.target;
    parts.push(
      `<text x="12" y="${y + 20}">${esc(r.label)}</text>`,
      `<rect x="${labelW}" y="${y + 6}" width="${Math.max(1, x(r.kvfabric) - labelW)}" height="14" fill="#2b6cb0"/>`,
      `<text x="${x(r.kvfabric) + 4}" y="${y + 17}">${fmt(r.kvfabric)}</text>`,
      `<rect x="${labelW}" y="${y + 22}" width="${Math.max(1, x(r.reference) - labelW)}" height="14" fill="#a0aec0"/>`,
      `<text x="${x(r.reference) + 4}" y="${y + 33}">${fmt(r.reference)}</text>`,
      `<text x="${labelW + barW + 70}" y="${y + 25}" font-weight="bold" fill="${r.target === undefined ? '#333' : miss ? '#c53030' : '#276749'}">${Number.isFinite(ratio) ? ratio.toFixed(2) + '×' : ''}${r.target !== undefined ? ` (≥ ${r.target})` : ''}</text>`,
    );
  });
  parts.push(
    `<text x="12" y="${height - 12}" fill="#555">bold: kvfabric / reference; with a target, green meets it and red misses it</text>`,
    '</svg>',
  );
  return parts.join('\n') + '\n';
}
