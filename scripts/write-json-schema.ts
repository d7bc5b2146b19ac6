// `npm run schema`: regenerates config/config.schema.json from the zod schema.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { generateConfigJsonSchema } from '../src/config/json-schema.js';

const target = fileURLToPath(new URL('../config/config.schema.json', import.meta.url));
writeFileSync(target, generateConfigJsonSchema());
console.log(`wrote ${target}`);
