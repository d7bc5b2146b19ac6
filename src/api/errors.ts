// The Mobile App API's error catalog: a stable code per failure; clients branch on `error.code`.
export const API_ERRORS = {
  UNAUTHORIZED: { status: 401, message: 'Missing or unknown device token: activate the app again.' },
  VALIDATION: { status: 400, message: 'The request body is not valid.' },
  INVALID_PUBLIC_KEY: { status: 400, message: 'public_key must be an ECDSA P-256 key, base64 SPKI DER (WebCrypto exportKey("spki")).' },
  INVALID_PUSH_TOKEN: { status: 400, message: 'push_token must be an FCM registration token, or "webpush:" followed by the PushSubscription JSON ({endpoint: https URL of a push service in mobile_app.web_push.push_services, keys: {p256dh, auth}}).' },
  ACTIVATION_INVALID: { status: 400, message: 'Unknown, used or expired activation code: ask for a new one.' },
  PIN_REQUIRED: { status: 400, message: 'A PIN is required: send pin (4 to 12 digits): the account\'s current PIN, or a new one if it has none.' },
  PIN_NOT_SET: { status: 403, message: 'A PIN is required but none is set for this account: set one in the portal or activate the app again.' },
  WRONG_PIN: { status: 403, message: 'Wrong PIN.' },
  BAD_SIGNATURE: { status: 403, message: 'The signature does not verify with this device\'s key over "{id}.{decision}".' },
  NOT_YOUR_REQUEST: { status: 403, message: 'This request belongs to another account.' },
  REQUEST_NOT_FOUND: { status: 404, message: 'No such pending request.' },
  REQUEST_EXPIRED: { status: 410, message: 'The request expired before it was answered.' },
  ALREADY_ANSWERED: { status: 409, message: 'The request was already answered.' },
  NO_ENROLLMENT: { status: 404, message: 'No TOTP secret of this device waits for confirmation: activate the app again with codes turned on.' },
  BAD_CODE: { status: 400, message: 'That is not a current code of the secret this activation handed out: check the phone\'s clock and send the code it shows now.' },
  RATE_LIMITED: { status: 429, message: 'Too many attempts: wait a few minutes.' },
} as const;

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
  if (err.validation) return { status: 400, body: { error: { code: 'VALIDATION', message: err.message } } };
  if (err.statusCode && err.statusCode < 500) return { status: err.statusCode, body: { error: { code: 'BAD_REQUEST', message: err.message } } };
  return undefined;
}
