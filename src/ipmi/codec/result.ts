/** Decoders never throw: they return a value or a typed reason the input was rejected. */
export type DecodeErrorCode =
  | 'truncated'
  | 'bad-version'
  | 'bad-class'
  | 'bad-checksum'
  | 'bad-length'
  | 'bad-field'
  | 'unsupported'
  | 'bad-padding'
  | 'bad-auth';

export interface DecodeError {
  ok: false;
  code: DecodeErrorCode;
  message: string;
}

export interface DecodeOk<T> {
  ok: true;
  value: T;
}

export type Decoded<T> = DecodeOk<T> | DecodeError;

export function ok<T>(value: T): DecodeOk<T> {
  return { ok: true, value };
}

export function fail(code: DecodeErrorCode, message: string): DecodeError {
  return { ok: false, code, message };
}
