// CSV as labels.csv uses it (RFC 4180): fields quoted when they hold a comma,
// a quote or a line break; rows end in LF (CRLF is read too).

/** One field, quoted when needed. */
export function csvField(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * Rows of a CSV text (RFC 4180: quoted fields may hold commas, doubled quotes
 * and line breaks; rows end in LF or CRLF; a UTF-8 byte order mark is skipped).
 */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const n = text.length;
  if (i >= n) return rows;
  for (;;) {
    let field = "";
    if (text[i] === '"') {
      const start = i;
      i++;
      for (;;) {
        if (i >= n) throw new Error(`unterminated quoted field starting at character ${start}`);
        const q = text.indexOf('"', i);
        if (q < 0) throw new Error(`unterminated quoted field starting at character ${start}`);
        field += text.slice(i, q);
        if (text[q + 1] === '"') {
          field += '"';
          i = q + 2;
          continue;
        }
        i = q + 1;
        break;
      }
      if (i < n && text[i] !== "," && text[i] !== "\n" && !(text[i] === "\r" && text[i + 1] === "\n"))
        throw new Error(`unexpected '${text[i]}' after a quoted field`);
    } else {
      let j = i;
      while (j < n && text[j] !== "," && text[j] !== "\n") j++;
      field = text.slice(i, j);
      if (j < n && text[j] === "\n" && field.endsWith("\r")) field = field.slice(0, -1);
      else if (j >= n && field.endsWith("\r")) field = field.slice(0, -1);
      i = j;
    }
    row.push(field);
    if (i >= n) {
      rows.push(row);
      return rows;
    }
    if (text[i] === ",") {
      i++;
      continue;
    }
    // a line break (LF or CRLF) ends the row; one at the very end ends the text
    i += text[i] === "\r" ? 2 : 1;
    rows.push(row);
    row = [];
    if (i >= n) return rows;
  }
}

/** Split one CSV line (RFC 4180 quoting, as train writes labels.csv). */
export function parseCsvLine(line: string): string[] {
  return parseCsv(line)[0] ?? [""];
}

