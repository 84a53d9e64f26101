/**
 * Header fields flat as node:http takes and gives them (`[name, value, name, value, ...]`), turned
 * into an object for the rare paths that edit a head (the image tap's whole-object refetch and its
 * ranged answer). Shared so the two paths merge names the same way: any case, first spelling kept,
 * repeated fields as one array grown in place (thousands of repeats stay linear).
 */
import type { OutgoingHttpHeaders } from 'node:http';

/** Flat fields as an object (repeated fields as arrays, first spelling), for the rare paths that edit them. */
export function fieldsObject(fields: readonly string[], drop: readonly string[] = []): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const keys = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const lower = fields[i]!.toLowerCase();
    if (drop.includes(lower)) continue;
    const key = keys.get(lower) ?? fields[i]!;
    keys.set(lower, key);
    const prev = out[key];
    if (prev === undefined) out[key] = fields[i + 1]!;
    else if (Array.isArray(prev)) prev.push(fields[i + 1]!);
    else out[key] = [String(prev), fields[i + 1]!];
  }
  return out;
}
