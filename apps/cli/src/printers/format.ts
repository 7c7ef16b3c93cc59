// Shared formatting for printers: aligned text tables, exact integers in JSON, human times.
import { TransportKind } from '@kvfabric/proto/common';
import { NodeState } from '@kvfabric/proto/metaserver';

export interface Column {
  title: string;
  /** Right-align (numbers, sizes). */
  right?: boolean;
}

/** A table with a header row and columns padded to their widest cell. */
export function renderTable(columns: Column[], rows: string[][]): string {
  const widths = columns.map((c, i) => Math.max(c.title.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) =>
        columns[i]!.right ? cell.padStart(widths[i]!) : i === cells.length - 1 ? cell : cell.padEnd(widths[i]!),
      )
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.title)), ...rows.map(line)].join('\n') + '\n';
}

/** Key/value lines with the keys padded. */
export function renderPairs(pairs: [string, string][]): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n') + '\n';
}

/** A uint64 for JSON: a number when exact, else its decimal string (never a lossy number). */
export function jsonInt(value: bigint): number | string {
  return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString();
}

export function count(value: bigint | number): string {
  return value.toLocaleString('en-US');
}

export function transportName(kind: TransportKind): string {
  switch (kind) {
    case TransportKind.TRANSPORT_KIND_TCP:
      return 'tcp';
    case TransportKind.TRANSPORT_KIND_VERBS:
      return 'verbs';
    default:
      return 'unknown';
  }
}

export function stateName(state: NodeState): 'live' | 'stale' | 'unknown' {
  switch (state) {
    case NodeState.NODE_STATE_LIVE:
      return 'live';
    case NodeState.NODE_STATE_STALE:
      return 'stale';
    default:
      return 'unknown';
  }
}

/** Milliseconds since the epoch → ISO string, or null for 0 (never set). */
export function isoTime(ms: bigint): string | null {
  return ms === 0n ? null : new Date(Number(ms)).toISOString();
}

/** A duration for humans: 850ms, 12s, 5m 3s, 2h 10m, 3d 4h. */
export function duration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '-';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

export function ago(ms: bigint, now = Date.now()): string {
  return ms === 0n ? '-' : `${duration(now - Number(ms))} ago`;
}
