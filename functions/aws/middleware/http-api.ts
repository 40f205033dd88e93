/** The parts of an API Gateway HTTP API (payload 2.0) event a webhook reads. */
import * as z from 'zod';

/**
 * @see https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html
 * @example { "version": "2.0", "rawPath": "/jira/webhook", "headers": { "x-hub-signature": "sha256=…" }, "body": "{…}", "isBase64Encoded": false }
 */
export const HttpApiEventSchema = z.looseObject({
  version: z.literal('2.0').optional(),
  rawPath: z.string().optional(),
  headers: z.record(z.string(), z.string()).optional(),
  body: z.string().optional(),
  isBase64Encoded: z.boolean().optional(),
});
export type HttpApiEvent = z.infer<typeof HttpApiEventSchema>;

/** The body exactly as sent (signatures are computed over these bytes), decoded when API Gateway base64-encoded it. */
export function rawBodyOf(event: HttpApiEvent): string {
  const body = event.body ?? '';
  return event.isBase64Encoded ? Buffer.from(body, 'base64').toString('utf8') : body;
}
