// The bounds-checked test/debug copies that Pool and Region both offer (the native side checks the bounds).
import { callNative, checkInteger, invalidArgument } from './errors.js';

interface NativeMemoryIo {
  write(offset: number, data: Buffer): void;
  read(offset: number, length: number): Buffer;
}

export function writeMemory(native: NativeMemoryIo, offset: number, data: Uint8Array): void {
  checkInteger('offset', offset, 0);
  if (!(data instanceof Uint8Array)) throw invalidArgument('data', 'a Buffer or Uint8Array', data);
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  callNative(() => native.write(offset, buf));
}

export function readMemory(native: NativeMemoryIo, offset: number, length: number): Buffer {
  checkInteger('offset', offset, 0);
  checkInteger('length', length, 0);
  return callNative(() => native.read(offset, length));
}
