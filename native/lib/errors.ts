// Native errors as typed errors. The codes are the same strings as packages/common's KvError codes (the
// dependency points the other way, so they are repeated here); callers funnel NativeError into KvError by code.

export const NATIVE_ERROR_CODES = [
  'INVALID_ARGUMENT',
  'POOL_EXHAUSTED',
  'POOL_INVALID_HANDLE',
  'REGION_INVALID',
  'LEASE_UNKNOWN',
  'LEASE_EXPIRED',
  'LEASE_FOREIGN',
  'LEASE_CONSUMED',
  'TRANSPORT_UNAVAILABLE',
  'TRANSPORT_FAILED',
  'TRANSPORT_TIMEOUT',
  'GRANT_REFUSED',
  'SSD_FAILED',
  'INTERNAL',
] as const;

export type NativeErrorCode = (typeof NATIVE_ERROR_CODES)[number];

export class NativeError extends Error {
  override readonly name = 'NativeError';
  readonly code: NativeErrorCode;

  constructor(code: NativeErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export function isNativeErrorCode(value: unknown): value is NativeErrorCode {
  return typeof value === 'string' && (NATIVE_ERROR_CODES as readonly string[]).includes(value);
}

/** Maps anything the addon threw to a NativeError; an Error without a known code becomes INTERNAL. */
export function toNativeError(err: unknown): NativeError {
  if (err instanceof NativeError) return err;
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return new NativeError(isNativeErrorCode(code) ? code : 'INTERNAL', err.message, { cause: err });
  }
  return new NativeError('INTERNAL', String(err));
}

/** Runs a synchronous addon call, rethrowing its errors as NativeError. */
export function callNative<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw toNativeError(err);
  }
}

// ------------------------------------------------------------------------------------------------- validation

/** A short, readable rendering of a bad value for messages: -3, "abc", undefined, Uint8Array(4). */
export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (value === null || typeof value !== 'object') return String(value);
  if (ArrayBuffer.isView(value))
    return `${value.constructor.name}(${(value as { length?: number }).length ?? value.byteLength})`;
  if (Array.isArray(value)) return `Array(${value.length})`;
  return value.constructor?.name ?? 'object';
}

export function invalidArgument(field: string, expected: string, got: unknown): NativeError {
  return new NativeError('INVALID_ARGUMENT', `${field}: expected ${expected}, got ${describe(got)}`);
}

/** An integer in [min, max] (both inclusive, max at most 2^53 - 1), else INVALID_ARGUMENT naming the field. */
export function checkInteger(field: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    const what =
      max === Number.MAX_SAFE_INTEGER
        ? min === 1
          ? 'a positive integer'
          : min === 0
            ? 'a non-negative integer'
            : `an integer >= ${min}`
        : `an integer in ${min}..${max}`;
    throw invalidArgument(field, what, value);
  }
  return value;
}

export function checkBoolean(field: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw invalidArgument(field, 'a boolean', value);
  return value;
}

export function checkObject(field: string, value: unknown): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw invalidArgument(field, 'an object', value);
  return value as Record<string, unknown>;
}

/** Refuses option keys the callee does not know (typos must not pass silently). */
export function checkKeys(field: string, options: Record<string, unknown>, known: readonly string[]): void {
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new NativeError('INVALID_ARGUMENT', `${field}.${key}: unknown option (known: ${known.join(', ')})`);
    }
  }
}
