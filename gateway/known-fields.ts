/** The parts of a JSON Schema that say which fields an object has. */
interface ObjectSchema {
  properties?: Record<string, ObjectSchema>;
  anyOf?: ObjectSchema[];
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * `value` with only the fields its schema declares, at every level the schema names fields.
 * OpenFaaS's Go decoders ignore fields they do not know (a field a later OpenFaaS added, `value`
 * in a secret DELETE), so the schemas accept them and the handlers drop them here: nothing
 * unknown reaches a provider or its stored records.
 */
export function knownFields<T>(schema: object, value: T): T {
  return pick(schema, value) as T;
}

function pick(schema: ObjectSchema, value: unknown): unknown {
  if (!isPlainObject(value)) return value;
  const properties = (schema.properties ? schema : schema.anyOf?.find((s) => s.properties))
    ?.properties;
  if (!properties) return value;
  const out: Record<string, unknown> = {};
  for (const [field, fieldSchema] of Object.entries(properties)) {
    if (Object.hasOwn(value, field)) out[field] = pick(fieldSchema, value[field]);
  }
  return out;
}
