// The Mobile App API's errors: codes and statuses from the one catalog (shared/errors.ts); clients branch on `error.code`.
import { API_ERRORS } from '../shared/errors.js';

export { API_ERRORS };

export type ApiErrorCode = keyof typeof API_ERRORS;

export class ApiError extends Error {
  readonly status: number;
  constructor(
    readonly code: ApiErrorCode,
    message?: string,
  ) {
    super(message ?? API_ERRORS[code].message);
    this.status = API_ERRORS[code].status;
  }
}

export const errorBodySchema = {
  type: 'object',
  properties: { error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } }, required: ['code', 'message'] } },
  required: ['error'],
} as const;

/** The status and body of an error the client caused (coded, validation, other 4xx); undefined = a bug (500). */
export function apiErrorBody(err: Error & { validation?: unknown; statusCode?: number }): { status: number; body: { error: { code: string; message: string } } } | undefined {
  if (err instanceof ApiError) return { status: err.status, body: { error: { code: err.code, message: err.message } } };
  // Redis or PostgreSQL down (health/engine-monitor.ts logs it once): not the client's fault, not a bug either.
  if ((err as { code?: unknown }).code === 'ENGINE_UNAVAILABLE') return { status: 503, body: { error: { code: 'UNAVAILABLE', message: API_ERRORS.UNAVAILABLE.message } } };
  if (err.validation) return { status: 400, body: { error: { code: 'VALIDATION', message: err.message } } };
  if (err.statusCode && err.statusCode < 500) return { status: err.statusCode, body: { error: { code: 'BAD_REQUEST', message: err.message } } };
  return undefined;
}
