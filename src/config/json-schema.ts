// The JSON Schema editors use to complete and check config.yaml, generated from the zod schema.
import { z } from 'zod';
import { configSchema } from './schema.js';

/** config/config.schema.json as it should be on disk: input types (what the file may say), pretty-printed. */
export function generateConfigJsonSchema(): string {
  const { $schema, ...rest } = z.toJSONSchema(configSchema, { io: 'input' });
  const schema = {
    $schema,
    title: 'radius-mfa-proxy config',
    description: 'config.yaml of radius-mfa-proxy. Generated from src/config/schema.ts by `npm run schema`; do not edit.',
    ...rest,
  };
  return `${JSON.stringify(schema, null, 2)}\n`;
}
