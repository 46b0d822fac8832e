/**
 * Log text kept as lines. The last element is the unfinished line (possibly ""), so appending
 * a chunk that splits a line mid-way joins it correctly; prepending does the same at the head.
 */

export function appendText(lines: string[], text: string): void {
  if (text === "") return;
  const parts = text.split("\n");
  if (lines.length === 0) {
    lines.push(...parts);
    return;
  }
  lines[lines.length - 1] += parts[0]!;
  for (let i = 1; i < parts.length; i++) lines.push(parts[i]!);
}

export function prependText(lines: string[], text: string): void {
  if (text === "") return;
  const parts = text.split("\n");
  if (lines.length === 0) {
    lines.push(...parts);
    return;
  }
  lines[0] = parts[parts.length - 1]! + lines[0]!;
  lines.unshift(...parts.slice(0, -1));
}

/** Lines to display: drops the empty tail after a final newline and stray carriage returns. */
export function visibleCount(lines: readonly string[]): number {
  return lines.length > 0 && lines[lines.length - 1] === "" ? lines.length - 1 : lines.length;
}

export function byteLength(text: string): number {
  return new TextEncoder().encode(text).length;
}

/** Drops the part of a chunk starting at `offset` that ends before `have` (bytes we already hold). */
export function unseenPart(offset: number, text: string, have: number): string {
  if (offset >= have) return text;
  const bytes = new TextEncoder().encode(text);
  const skip = have - offset;
  if (skip >= bytes.length) return "";
  return new TextDecoder().decode(bytes.subarray(skip));
}

/** Indices of lines containing `query` (case-insensitive). */
export function searchLines(lines: readonly string[], query: string, limit = 10_000): number[] {
  if (!query) return [];
  const q = query.toLowerCase();
  const out: number[] = [];
  for (let i = 0; i < lines.length && out.length < limit; i++) {
    if (lines[i]!.toLowerCase().includes(q)) out.push(i);
  }
  return out;
}
