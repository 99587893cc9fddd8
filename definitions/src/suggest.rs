//! "Did you mean" suggestions for misspelt names.

/// French words a desk designer may write for the language's keywords.
const FRENCH: &[(&str, &str)] = &[
    ("tache", "task"),
    ("tâche", "task"),
    ("etape", "task"),
    ("étape", "task"),
    ("debut", "start"),
    ("début", "start"),
    ("depart", "start"),
    ("départ", "start"),
    ("fin", "end"),
    ("porte", "gate"),
    ("decision", "gate"),
    ("décision", "gate"),
    ("parallele", "parallel"),
    ("parallèle", "parallel"),
    ("branche", "branch"),
    ("notifier", "notify"),
    ("notification", "notify"),
    ("attente", "wait"),
    ("attendre", "wait"),
    ("appel", "call"),
    ("prestataire", "provider"),
    ("formulaire", "form"),
    ("champ", "field"),
    ("issue", "outcome"),
    ("resultat", "outcome"),
    ("résultat", "outcome"),
    ("membre", "member"),
    ("rôle", "role"),
    ("titre", "title"),
    ("langue", "language"),
    ("indicateur", "kpi"),
    ("maturite", "maturity"),
    ("maturité", "maturity"),
    ("modele", "template"),
    ("modèle", "template"),
    ("echeance", "due"),
    ("échéance", "due"),
    ("delai", "due"),
    ("délai", "due"),
    ("rappel", "remind"),
    ("escalade", "escalate"),
    ("sinon", "otherwise"),
    ("quand", "when"),
    ("si", "when"),
    ("aller", "goto"),
    ("obligatoire", "required"),
    ("aide", "help"),
    ("libelle", "label"),
    ("libellé", "label"),
];

/// The closest candidate to `word`, if it is close enough to be a likely typo (or the
/// keyword for a French word).
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word_l = word.to_lowercase();
    let candidates: Vec<&'a str> = candidates.into_iter().collect();
    if let Some((_, en)) = FRENCH.iter().find(|(fr, _)| *fr == word_l)
        && let Some(c) = candidates.iter().find(|c| **c == *en)
    {
        return Some(c);
    }
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
        assert_eq!(did_you_mean("tâche", ["start", "task"]), Some("task"));
        // A French word only maps to a keyword allowed at that place.
        assert_eq!(did_you_mean("tâche", ["start"]), None);
    }
}
