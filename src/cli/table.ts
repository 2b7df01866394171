/**
 * @module cli/table
 * Docker-style column tables: upper-case headers, columns padded by three spaces, no
 * borders, no colour (so output is the same on a terminal and in a pipe).
 */
export function formatTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('   ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

export function timeAgo(iso: string | undefined, now = Date.now()): string {
  if (!iso) return 'N/A';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return 'N/A';
  const s = Math.max(0, Math.round((now - t) / 1000));
  const units: Array<[number, string]> = [[31536000, 'year'], [2592000, 'month'], [604800, 'week'], [86400, 'day'], [3600, 'hour'], [60, 'minute']];
  for (const [n, u] of units) {
    if (s >= n) {
      const k = Math.floor(s / n);
      return `${k} ${u}${k > 1 ? 's' : ''} ago`;
    }
  }
  return s < 5 ? 'Less than a second ago' : `${s} seconds ago`;
}
