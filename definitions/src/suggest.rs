//! "Did you mean" suggestions for misspelt names.

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word_l = word.to_lowercase();
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        if c == word {
            continue;
        }
        let score = strsim::jaro_winkler(&word_l, &c.to_lowercase());
        // Hyphen and underscore mix-ups, and a missing accent-free letter, are common.
        let score = if word_l.replace('_', "-") == c.replace('_', "-") {
            1.0
        } else {
            score
        };
        if score >= 0.8 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn suggests_close_names_only() {
        let c = ["recevabilite", "negociation", "signature"];
        assert_eq!(did_you_mean("recevabilit", c), Some("recevabilite"));
        assert_eq!(did_you_mean("negotiation", c), Some("negociation"));
        assert_eq!(did_you_mean("zzz", c), None);
        assert_eq!(did_you_mean("a_b", ["a-b"]), Some("a-b"));
    }
}
