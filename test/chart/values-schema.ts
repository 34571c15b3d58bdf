// Drift between charts/socks4-fleet/values.yaml and values.schema.json, as a list of problems
// (empty = in step). Pure: takes the parsed YAML document and the schema object.
//
// The rules:
// - strict schema: every object schema either lists its properties with
//   `additionalProperties: false`, is a typed map (`additionalProperties` is a schema, for labels
//   and annotations), or is a named Kubernetes pass-through (`$comment: "Kubernetes <Type>, ..."`,
//   left for the API server to validate). Nothing is silently open.
// - same keys: wherever the schema lists the chart's own properties, values.yaml declares exactly
//   those keys (a key only in the schema is undocumented; one only in values.yaml is refused by
//   Helm). A Kubernetes-shaped value (`$comment: "Kubernetes <Type>..."`: resources, probes,
//   affinity) is one value, documented at its key; its fields are Kubernetes'.
// - documented: every such key has a comment right above it; a leaf (a value the chart passes on
//   or uses as is) has a helm-docs `# --` comment.
import { isMap, isScalar, type Document, type Pair, type YAMLMap } from 'yaml';

export type JsonSchema = {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  oneOf?: JsonSchema[];
  anyOf?: JsonSchema[];
  $ref?: string;
  $comment?: string;
  definitions?: Record<string, JsonSchema>;
};

const PASSTHROUGH = /^Kubernetes [A-Z]\w+/;

function resolveRef(schema: JsonSchema, root: JsonSchema): JsonSchema {
  let current = schema;
  for (let depth = 0; current.$ref !== undefined; depth++) {
    const match = /^#\/definitions\/(.+)$/.exec(current.$ref);
    const target = match === null ? undefined : root.definitions?.[match[1]!];
    if (target === undefined || depth > 20) throw new Error(`unresolvable $ref ${current.$ref}`);
    current = target;
  }
  return current;
}

const isObjectSchema = (schema: JsonSchema): boolean =>
  schema.properties !== undefined ||
  schema.type === 'object' ||
  (Array.isArray(schema.type) && schema.type.includes('object'));

/** Object schemas that are not strict, anywhere in the schema (definitions included). */
export function findOpenObjects(root: JsonSchema): string[] {
  const problems: string[] = [];
  const visit = (schema: JsonSchema, path: string): void => {
    if (schema.$ref !== undefined) return; // checked where it is defined
    if (isObjectSchema(schema)) {
      const extra = schema.additionalProperties;
      if (schema.properties !== undefined) {
        if (extra !== false) problems.push(`${path}: lists properties but does not set additionalProperties: false`);
      } else if (typeof extra === 'object') {
        visit(extra, `${path}.*`);
      } else if (!PASSTHROUGH.test(schema.$comment ?? '')) {
        problems.push(
          `${path}: open object (set additionalProperties: false, a typed map, or a "Kubernetes <Type>" $comment)`,
        );
      }
    }
    for (const [key, child] of Object.entries(schema.properties ?? {})) visit(child, `${path}.${key}`);
    if (schema.items !== undefined) visit(schema.items, `${path}[]`);
    for (const [i, child] of (schema.oneOf ?? []).entries()) visit(child, `${path}.oneOf[${i}]`);
    for (const [i, child] of (schema.anyOf ?? []).entries()) visit(child, `${path}.anyOf[${i}]`);
  };
  visit(root, '(root)');
  for (const [name, definition] of Object.entries(root.definitions ?? {})) visit(definition, `definitions.${name}`);
  return problems;
}

/** The comment right above a key; the first key of a nested map carries it on the map itself. */
function commentOf(pair: Pair, map: YAMLMap): string {
  const onKey = isScalar(pair.key) ? pair.key.commentBefore : null;
  if (onKey) return onKey;
  return map.items[0] === pair ? (map.commentBefore ?? '') : '';
}

/** Keys missing on either side, and keys without their comment. */
export function findValuesDrift(document: Document, root: JsonSchema): string[] {
  const problems: string[] = [];
  const visit = (map: YAMLMap, schemaIn: JsonSchema, path: string): void => {
    const schema = resolveRef(schemaIn, root);
    const properties = schema.properties ?? {};
    const seen = new Set<string>();
    for (const pair of map.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      const at = path === '' ? key : `${path}.${key}`;
      seen.add(key);
      const child = properties[key];
      if (child === undefined) {
        problems.push(`${at}: in values.yaml but not in values.schema.json`);
        continue;
      }
      const resolved = resolveRef(child, root);
      const kubernetesShaped = PASSTHROUGH.test(resolved.$comment ?? '');
      const structured = resolved.properties !== undefined && !kubernetesShaped && isMap(pair.value);
      const comment = commentOf(pair, map).trim();
      if (comment === '') problems.push(`${at}: no comment above it in values.yaml`);
      else if (!structured && !/(^|\n)\s*--\s/.test(comment))
        problems.push(`${at}: its comment does not start with "# --"`);
      if (structured) visit(pair.value as YAMLMap, resolved, at);
    }
    for (const key of Object.keys(properties)) {
      if (!seen.has(key))
        problems.push(`${path === '' ? key : `${path}.${key}`}: in values.schema.json but not declared in values.yaml`);
    }
  };
  if (!isMap(document.contents)) return ['values.yaml: the document is not a map'];
  visit(document.contents, root, '');
  return problems;
}
