//! RFC 4180 CSV cells and rows for the exports, safe to open in a spreadsheet.
//!
//! Quoting: a cell holding a comma, a double quote, CR or LF is wrapped in double quotes with
//! its quotes doubled; rows end in CRLF. Formula injection (OWASP "CSV Injection"): a text cell
//! starting with `=`, `+`, `-`, `@`, TAB or CR is prefixed with `'` and wrapped in double
//! quotes, so a spreadsheet shows it as text instead of evaluating it. Only cells holding
//! text a charge point or a user chose (idTags, charge point ids, stop reasons) get the prefix:
//! numbers the server computes are written as numbers, so a negative energy stays `-12`
//! and sums in a spreadsheet.

/// One cell of a row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    /// Text from outside (charge point, user): quoted as needed and guarded against formulas.
    Text(&'a str),
    /// Text the server wrote itself (a number, a time, a state): quoted as needed only.
    Plain(&'a str),
    /// No value: an empty cell.
    Empty,
}

/// Characters that make a spreadsheet read a cell as a formula (OWASP).
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Appends one row (cells separated by commas, CRLF at the end) to `out`.
pub fn push_row(out: &mut String, cells: &[Cell<'_>]) {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match cell {
            Cell::Text(text) if text.starts_with(FORMULA_STARTS) => {
                out.push_str("\"'");
                push_doubled(out, text);
                out.push('"');
            }
            Cell::Text(text) | Cell::Plain(text) => {
                if text.contains([',', '"', '\r', '\n']) {
                    out.push('"');
                    push_doubled(out, text);
                    out.push('"');
                } else {
                    out.push_str(text);
                }
            }
            Cell::Empty => {}
        }
    }
    out.push_str("\r\n");
}

fn push_doubled(out: &mut String, text: &str) {
    for c in text.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[Cell<'_>]) -> String {
        let mut out = String::new();
        push_row(&mut out, cells);
        out
    }

    #[test]
    fn quotes_what_rfc_4180_requires() {
        assert_eq!(
            row(&[Cell::Plain("a"), Cell::Empty, Cell::Plain("1")]),
            "a,,1\r\n"
        );
        assert_eq!(row(&[Cell::Text("a,b")]), "\"a,b\"\r\n");
        assert_eq!(row(&[Cell::Text("say \"hi\"")]), "\"say \"\"hi\"\"\"\r\n");
        assert_eq!(
            row(&[Cell::Plain("a\nb"), Cell::Text("c\rd")]),
            "\"a\nb\",\"c\rd\"\r\n"
        );
    }

    #[test]
    fn guards_text_against_formulas_but_not_numbers() {
        assert_eq!(row(&[Cell::Text("=1+1")]), "\"'=1+1\"\r\n");
        assert_eq!(row(&[Cell::Text("+49")]), "\"'+49\"\r\n");
        assert_eq!(row(&[Cell::Text("-x")]), "\"'-x\"\r\n");
        assert_eq!(row(&[Cell::Text("@SUM(A1)")]), "\"'@SUM(A1)\"\r\n");
        assert_eq!(row(&[Cell::Text("\tx")]), "\"'\tx\"\r\n");
        assert_eq!(row(&[Cell::Text("\rx")]), "\"'\rx\"\r\n");
        assert_eq!(
            row(&[Cell::Text("=HYPERLINK(\"x\")")]),
            "\"'=HYPERLINK(\"\"x\"\")\"\r\n"
        );
        assert_eq!(row(&[Cell::Plain("-12")]), "-12\r\n");
        assert_eq!(row(&[Cell::Text("a=b")]), "a=b\r\n");
    }
}
