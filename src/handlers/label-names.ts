/**
 * The label names a job keeps from its delivery (for routing rules), the one just added included:
 * GitHub lists it on the issue too, but a payload is not trusted to. Absent when there are none.
 */
export function labelNames(labels: readonly { name: string }[] | null | undefined, added?: string): { labels: string[] } | Record<string, never> {
  const names = [...new Set([...(labels ?? []).map((l) => l.name), ...(added ? [added] : [])])].filter((n) => n !== "");
  return names.length > 0 ? { labels: names } : {};
}
