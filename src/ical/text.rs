//! Content-line bytes: TEXT escaping, URI and parameter sanitising, and folding.
//!
//! - TEXT values (RFC 5545 section 3.3.11): CRLF and bare CR are first normalised to LF,
//!   then `\` `;` `,` and LF are escaped as `\\` `\;` `\,` `\n`. Other control
//!   characters (everything below U+0020 except HTAB, and U+007F) are not allowed in
//!   TEXT and are dropped, so no bare CR or LF can ever reach the output.
//! - Parameter values (section 3.2): DQUOTE and controls are dropped; a value holding
//!   `;` `:` or `,` is quoted.
//! - Folding (section 3.1): every content line ends in CRLF and no physical line is
//!   longer than 75 octets excluding the CRLF. A fold is CRLF followed by one space,
//!   and it never splits a UTF-8 sequence (so each physical line is valid UTF-8).

/// The longest physical line in octets, excluding CRLF (RFC 5545 section 3.1).
pub const MAX_LINE_OCTETS: usize = 75;

/// Escapes a TEXT value (RFC 5545 section 3.3.11) after normalising line breaks.
pub fn escape_text(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {
                // CRLF and bare CR both become one line break.
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("\\n");
            }
            '\t' => out.push('\t'),
            c if c.is_control() && (c as u32) < 0x80 => {}
            c => out.push(c),
        }
    }
    out
}

/// Makes a URI value safe to place on one content line (RFC 5545 section 3.3.13):
/// URIs are not escaped, so control characters (which no valid URI holds) are dropped.
pub fn sanitize_uri(value: &str) -> String {
    value.chars().filter(|c| !c.is_control()).collect()
}

/// A parameter value (RFC 5545 section 3.2): DQUOTE and controls dropped, quoted when
/// it holds `;`, `:` or `,`.
pub fn param_value(value: &str) -> String {
    let clean: String = value
        .chars()
        .filter(|c| *c != '"' && !c.is_control())
        .collect();
    if clean.contains([';', ':', ',']) {
        format!("\"{clean}\"")
    } else {
        clean
    }
}

/// Appends `line` (one unfolded content line without its line break) to `out`, folded
/// to at most [`MAX_LINE_OCTETS`] octets per physical line, each ending in CRLF.
///
/// A fold is inserted only at a character boundary, so a multi-byte character moves
/// whole to the next physical line.
pub fn push_folded(out: &mut String, line: &str) {
    let mut rest = line;
    let mut budget = MAX_LINE_OCTETS;
    loop {
        if rest.len() <= budget {
            out.push_str(rest);
            out.push_str("\r\n");
            return;
        }
        let mut cut = budget;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        // `cut` is at least budget - 3 > 0, so every physical line makes progress.
        let (head, tail) = rest.split_at(cut);
        out.push_str(head);
        out.push_str("\r\n ");
        rest = tail;
        // The continuation's leading space counts towards the 75 octets.
        budget = MAX_LINE_OCTETS - 1;
    }
}

/// Builds the body of a calendar one content line at a time.
#[derive(Debug, Default)]
pub struct ContentWriter {
    out: String,
}

impl ContentWriter {
    pub fn new() -> Self {
        ContentWriter::default()
    }

    /// Writes `NAME;P1=v1;P2=v2:value`. `value` must already be escaped or sanitised for
    /// its value type; parameter values are sanitised here.
    pub fn prop(&mut self, name: &str, params: &[(&str, &str)], value: &str) {
        let mut line = String::with_capacity(name.len() + value.len() + 16);
        line.push_str(name);
        for (key, val) in params {
            line.push(';');
            line.push_str(key);
            line.push('=');
            line.push_str(&param_value(val));
        }
        line.push(':');
        line.push_str(value);
        push_folded(&mut self.out, &line);
    }

    /// Writes a TEXT property, escaping the value.
    pub fn text(&mut self, name: &str, value: &str) {
        self.prop(name, &[], &escape_text(value));
    }

    /// Writes a URI property, sanitising the value.
    pub fn uri(&mut self, name: &str, params: &[(&str, &str)], value: &str) {
        self.prop(name, params, &sanitize_uri(value));
    }

    /// Writes `BEGIN:<component>`.
    pub fn begin(&mut self, component: &str) {
        self.prop("BEGIN", &[], component);
    }

    /// Writes `END:<component>`.
    pub fn end(&mut self, component: &str) {
        self.prop("END", &[], component);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folded(line: &str) -> String {
        let mut out = String::new();
        push_folded(&mut out, line);
        out
    }

    fn physical_lines(folded: &str) -> Vec<&str> {
        let body = folded.strip_suffix("\r\n").unwrap_or(folded);
        body.split("\r\n").collect()
    }

    fn unfold(folded: &str) -> String {
        folded.trim_end_matches("\r\n").replace("\r\n ", "")
    }

    #[test]
    fn text_values_are_escaped_and_line_breaks_normalised() {
        let cases = [
            ("plain", "plain"),
            ("a,b", "a\\,b"),
            ("a;b", "a\\;b"),
            ("a\\b", "a\\\\b"),
            ("a\nb", "a\\nb"),
            ("a\r\nb", "a\\nb"),
            ("a\rb", "a\\nb"),
            ("a\r\rb", "a\\n\\nb"),
            ("a\n\r\nb", "a\\n\\nb"),
            ("end\r", "end\\n"),
            ("tab\there", "tab\there"),
            ("bell\u{7}null\u{0}del\u{7f}", "bellnulldel"),
            ("a:b \"q\"", "a:b \"q\""),
            ("\\n is not a newline", "\\\\n is not a newline"),
            ("Zürich; 東京, 🎉", "Zürich\\; 東京\\, 🎉"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(escape_text(input), want, "input {input:?}");
        }
    }

    #[test]
    fn escaped_text_never_holds_a_cr_or_lf() {
        for input in ["\r", "\n", "\r\n", "x\r\ny\rz\n", "\u{85}\u{2028}"] {
            let out = escape_text(input);
            assert!(!out.contains(['\r', '\n']), "{input:?} -> {out:?}");
        }
    }

    #[test]
    fn parameter_values_are_quoted_only_when_needed() {
        let cases = [
            ("Europe/Berlin", "Europe/Berlin"),
            ("a;b", "\"a;b\""),
            ("a:b", "\"a:b\""),
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "say hi"),
            ("line\r\nbreak", "linebreak"),
        ];
        for (input, want) in cases {
            assert_eq!(param_value(input), want, "input {input:?}");
        }
    }

    #[test]
    fn uris_lose_control_characters() {
        assert_eq!(
            sanitize_uri("https://x.example/a?b=c\r\nEVIL:1"),
            "https://x.example/a?b=cEVIL:1"
        );
    }

    #[test]
    fn folding_keeps_every_physical_line_within_75_octets() {
        // (line, expected lengths in octets of the physical lines)
        let a = |n: usize| "a".repeat(n);
        let cases: Vec<(String, Vec<usize>)> = vec![
            (String::new(), vec![0]),
            (a(74), vec![74]),
            (a(75), vec![75]),
            (a(76), vec![75, 2]),
            (a(75 + 74), vec![75, 75]),
            (a(75 + 75), vec![75, 75, 2]),
            // "ü" is 2 octets: 74 ASCII + ü would end at octet 76, so ü moves down.
            (format!("{}ü", a(74)), vec![74, 3]),
            (format!("{}ü", a(73)), vec![75]),
            (format!("{}üb", a(73)), vec![75, 2]),
            // "東" is 3 octets straddling the boundary at every offset.
            (format!("{}東", a(72)), vec![75]),
            (format!("{}東", a(73)), vec![73, 4]),
            (format!("{}東", a(74)), vec![74, 4]),
            // "🎉" is 4 octets.
            (format!("{}🎉", a(71)), vec![75]),
            (format!("{}🎉", a(72)), vec![72, 5]),
            (format!("{}🎉", a(73)), vec![73, 5]),
            (format!("{}🎉", a(74)), vec![74, 5]),
            // A continuation line holds at most 74 octets after its space.
            (format!("{}{}🎉", a(75), a(71)), vec![75, 72, 5]),
            (format!("{}{}🎉", a(75), a(70)), vec![75, 75]),
            ("🎉".repeat(40), vec![72, 73, 17]),
        ];
        for (line, want) in cases {
            let out = folded(&line);
            assert!(out.ends_with("\r\n"), "{line:?}");
            let lens: Vec<usize> = physical_lines(&out).iter().map(|l| l.len()).collect();
            assert_eq!(lens, want, "line of {} octets", line.len());
            for (i, l) in physical_lines(&out).iter().enumerate() {
                assert!(l.len() <= MAX_LINE_OCTETS);
                assert_eq!(i > 0, l.starts_with(' '), "continuation marker in {l:?}");
            }
            assert_eq!(unfold(&out), line, "unfolding gives the line back");
        }
    }

    #[test]
    fn folding_never_splits_a_utf8_sequence() {
        let line = format!("SUMMARY:{}", "Zürich Ångström 東京 🎉 ".repeat(12));
        for prefix in 0..8 {
            let padded = format!("{}{}", "x".repeat(prefix), line);
            let out = folded(&padded);
            // Each physical line is a &str slice of valid UTF-8 by construction; check
            // the bytes too, as a client sees them.
            for l in out.as_bytes().split(|b| *b == b'\n') {
                assert!(std::str::from_utf8(l).is_ok());
                assert!(l.len() <= MAX_LINE_OCTETS + 1); // + the CR
            }
            assert_eq!(unfold(&out), padded);
        }
    }

    #[test]
    fn content_writer_writes_params_and_crlf() {
        let mut w = ContentWriter::new();
        w.begin("VEVENT");
        w.prop("DTSTART", &[("TZID", "Europe/Berlin")], "20240330T100000");
        w.text("SUMMARY", "a,b");
        w.uri("URL", &[], "https://x.example/\n");
        w.end("VEVENT");
        assert_eq!(
            w.finish(),
            "BEGIN:VEVENT\r\nDTSTART;TZID=Europe/Berlin:20240330T100000\r\n\
             SUMMARY:a\\,b\r\nURL:https://x.example/\r\nEND:VEVENT\r\n"
        );
    }
}
