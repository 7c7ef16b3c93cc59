// Byte sizes as people write them: "16gb", "512mib", "4096", "1.5GiB". Decimal units (kb, mb, gb, tb) are
// powers of 1000, binary units (kib, mib, gib, tib) powers of 1024; a bare number is bytes.
import { invalid } from './errors.js';

const UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

const PATTERN = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i;

/** Parses a size into a whole number of bytes; throws INVALID_ARGUMENT naming `field`. */
export function parseSize(raw: string | number, field = 'size'): number {
  if (typeof raw === 'number') {
    if (Number.isSafeInteger(raw) && raw >= 0) return raw;
    throw invalid(field, 'expected a size like 16gb', raw);
  }
  const match = PATTERN.exec(raw);
  const unit = match ? UNITS[(match[2] ?? '').toLowerCase() || 'b'] : undefined;
  if (!match || unit === undefined) throw invalid(field, 'expected a size like 16gb or 512mib', raw);
  const bytes = Number(match[1]) * unit;
  if (!Number.isFinite(bytes) || !Number.isSafeInteger(Math.round(bytes))) throw invalid(field, 'size too large', raw);
  return Math.round(bytes);
}

/** 1536 → "1.5 KiB". For humans only; never parsed back. */
export function formatBytes(bytes: number | bigint): string {
  let value = Number(bytes);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (Math.abs(value) >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  return i === 0 ? `${value} B` : `${value.toFixed(value >= 100 ? 0 : value >= 10 ? 1 : 2)} ${units[i]}`;
}
