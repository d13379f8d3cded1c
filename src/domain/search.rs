//! How text searches compare text: both the searched text and the needle are
//! [`fold`]ed, and a match is the folded needle anywhere in the folded text.
//!
//! Both store engines answer with this one function: sled folds while it filters its
//! catalog, PostgreSQL stores each searched column's folded text beside it (written
//! with the row, matched with `LIKE` under byte comparison), so a search finds the same
//! records on either engine, non-ASCII text included.

/// The text as searches compare it: Unicode's full lowercase mapping of the whole
/// text (`str::to_lowercase`), nothing else. Case goes (`É` to `é`, `İ` to `i` with a
/// combining dot above, a word-final `Σ` to `ς` and any other to `σ`), while accents,
/// combining marks, `ß` and widths stay: no normalisation, no case folding beyond
/// lowercase (`STRASSE` does not find `Straße`, `emile` does not find `Émile`).
///
/// A folded text folds to itself, so a needle folded once (the API does) is its own
/// folding.
pub fn fold(text: &str) -> String {
    text.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_lowercases_every_script_and_keeps_everything_else() {
        let cases = [
            ("Seminar ROOM 3", "seminar room 3"),
            ("ÉMILE", "émile"),
            ("émile", "émile"),
            // A combining accent stays a combining accent (no normalisation).
            ("E\u{301}MILE", "e\u{301}mile"),
            ("Straße", "straße"),
            ("STRASSE", "strasse"),
            ("\u{1E9E}", "ß"),
            // Turkish: the dotted capital I keeps its dot as a combining mark; the
            // plain I is the Latin i, and the dotless ı stays dotless.
            ("İstanbul", "i\u{307}stanbul"),
            ("ISTANBUL", "istanbul"),
            ("ılık", "ılık"),
            // Greek sigma: final at a word's end, medial elsewhere.
            ("ΟΔΟΣ", "οδος"),
            ("ΟΔΟΣ ΝΕΑ", "οδος νεα"),
            ("ΣΟΦΙΑ", "σοφια"),
            ("Σ", "σ"),
            ("ΣΑΣ", "σας"),
            ("Моя КОМНАТА", "моя комната"),
            // The Kelvin sign lowercases to an ASCII k; full-width letters stay wide.
            ("\u{212A}", "k"),
            ("ＡＢ", "ａｂ"),
            ("", ""),
            ("50% _off_ \\", "50% _off_ \\"),
        ];
        for (text, want) in cases {
            assert_eq!(fold(text), want, "{text:?}");
            assert_eq!(fold(want), want, "{want:?} folds to itself");
        }
    }
}
