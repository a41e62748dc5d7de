import { ConfigError } from '../errors.js';

/** Validates that the options argument is an object; returns it typed. */
export function optionsObject<T extends object>(value: T | undefined, option = 'options'): T {
  if (typeof value !== 'object' || value === null) {
    throw new ConfigError(option, 'must be an object');
  }
  return value;
}

/** Validates an optional positive whole number of milliseconds. */
export function positiveMs(
  option: string,
  value: unknown,
  fallback: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0 || value > max) {
    throw new ConfigError(option, `must be a whole number of milliseconds from 1 to ${max}`);
  }
  return value;
}

/** The longest delay setTimeout honours; a longer one fires at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Validates a required non-empty string option; the value is never echoed. */
export function requiredString(option: string, value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new ConfigError(option, 'is required and must be a non-empty string');
  }
  return value;
}

/** Validates an optional function option. */
export function optionalFunction<T>(option: string, value: T | undefined): T | undefined {
  if (value !== undefined && typeof value !== 'function') {
    throw new ConfigError(option, 'must be a function');
  }
  return value;
}
