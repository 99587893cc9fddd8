//! Email templates: handlebars in strict mode, French and English, one file per template and
//! language (`templates/fr/tache-assignee.hbs`): the first line is the subject, a line `---`,
//! then the plain-text body. The HTML part is made from the rendered text (escaped, with
//! paragraphs and clickable links), so no template can inject markup.
//!
//! An institution overrides or adds templates with files of the same shape in a folder of
//! its own. Each one is checked when loaded: the format, no unescaped output (`{{{ }}}`), and
//! a render in strict mode with every variable present, so a misspelt variable is an error
//! at start, not an empty string in an email at 3 a.m.
//!
//! Data minimisation: the only variables are the desk's title, the request's title and
//! reference, the step, the deadline, the role and the link ([`Context`]). Case data never
//! reaches a template.

use std::collections::BTreeMap;
use std::path::Path;

use guichet_definitions::model::Language;
use handlebars::Handlebars;
use serde::Serialize;

/// Everything a template may use.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Context {
    /// The desk's title (the process title).
    pub desk: String,
    pub request: RequestRef,
    /// The step concerned (a task's title), or empty.
    pub step: String,
    /// The task's deadline, formatted for the language, or empty.
    pub deadline: String,
    /// The role the recipient acts in, or empty.
    pub role: String,
    /// The link to open (the task's page or the request's status page).
    pub link: String,
}

/// Everything the daily digest may use: the same facts as a task email, for each task.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct DigestContext {
    /// How many tasks wait (up to the inbox's count bound).
    pub count: usize,
    /// There are more than `count`.
    pub more_than: bool,
    /// More than one task.
    pub several: bool,
    /// How many are listed, and whether that is fewer than `count`.
    pub shown: usize,
    pub truncated: bool,
    pub tasks: Vec<DigestTask>,
    /// The staff inbox page, and the page where the preference is changed.
    pub inbox: String,
    pub preferences: String,
}

/// One task of a digest.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct DigestTask {
    pub desk: String,
    pub request: RequestRef,
    pub step: String,
    pub deadline: String,
    pub role: String,
    pub link: String,
    pub overdue: bool,
}

/// The template of the daily digest (not a template a definition may name).
pub const DIGEST: &str = "resume-quotidien";

/// The template of a fresh follow-up link the sponsor asked for (not a template a definition
/// may name); named by the engine, which queues it.
pub const FOLLOW_LINK: &str = guichet_engine::runtime::dossier::FOLLOW_LINK;

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RequestRef {
    pub title: String,
    pub reference: String,
}

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// A problem with a template file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {message}")]
pub struct TemplateError {
    pub file: String,
    pub message: String,
}

macro_rules! builtins {
    ($($name:literal),* $(,)?) => {
        &[ $(
            ($name, "fr", include_str!(concat!("../../templates/fr/", $name, ".hbs"))),
            ($name, "en", include_str!(concat!("../../templates/en/", $name, ".hbs"))),
        )* ]
    };
}

/// The shipped templates: every standard name of the definition language, in both languages.
const BUILTIN: &[(&str, &str, &str)] = builtins!(
    "demande-recue",
    "complement-demande",
    "demande-acceptee",
    "demande-refusee",
    "demande-retiree",
    "contrat-a-signer",
    "acces-ouvert",
    "information-patients",
    "tache-assignee",
    "tache-rappel",
    "tache-echeance-depassee",
    "tache-escalade",
    "tache-reassignee",
    "nouvelle-demande",
    "decision-comite",
    "resume-quotidien",
    "lien-suivi",
);

/// The registry of templates.
#[derive(Debug)]
pub struct Templates {
    registry: Handlebars<'static>,
    /// Where each (name, language) came from, for messages.
    origin: BTreeMap<(String, String), String>,
}

impl Templates {
    /// The shipped templates only.
    pub fn builtin() -> Templates {
        let mut t = Templates {
            registry: registry(),
            origin: BTreeMap::new(),
        };
        for (name, lang, source) in BUILTIN {
            // The shipped templates are checked by a test; a failure here is a build defect.
            if let Err(e) = t.add(
                name,
                lang,
                source,
                &format!("built-in {lang}/{name}.hbs"),
                false,
            ) {
                panic!("{e}");
            }
        }
        t
    }

    /// The shipped templates, overridden and extended by the `.hbs` files of `dir`, laid out as
    /// `dir/fr/NAME.hbs` and `dir/en/NAME.hbs`. Every problem of every file is reported.
    pub fn with_overrides(dir: &Path) -> Result<Templates, Vec<TemplateError>> {
        let mut t = Templates::builtin();
        let mut errors = Vec::new();
        for lang in ["fr", "en"] {
            let sub = dir.join(lang);
            let Ok(entries) = std::fs::read_dir(&sub) else {
                continue;
            };
            let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
            files.sort();
            for path in files {
                let Some(name) = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".hbs"))
                else {
                    continue;
                };
                let file = path.display().to_string();
                match std::fs::read_to_string(&path) {
                    Ok(source) => {
                        if let Err(e) = t.add(name, lang, &source, &file, true) {
                            errors.push(e);
                        }
                    }
                    Err(e) => errors.push(TemplateError {
                        file,
                        message: format!("cannot read: {e}"),
                    }),
                }
            }
        }
        if errors.is_empty() {
            Ok(t)
        } else {
            Err(errors)
        }
    }

    fn add(
        &mut self,
        name: &str,
        lang: &str,
        source: &str,
        file: &str,
        from_desk: bool,
    ) -> Result<(), TemplateError> {
        let err = |message: String| TemplateError {
            file: file.to_owned(),
            message,
        };
        let Some((subject, body)) = source.split_once("\n---\n") else {
            return Err(err(
                "expected the subject on the first line, then a line `---`, then the body".into(),
            ));
        };
        if subject.contains('\n') {
            return Err(err("the subject must be a single line".into()));
        }
        if from_desk && (source.contains("{{{") || source.contains("{{&")) {
            return Err(err(
                "unescaped output ({{{ }}} or {{& }}) is not allowed in desk templates".into(),
            ));
        }
        for (part, text) in [("subject", subject), ("body", body)] {
            self.registry
                .register_template_string(&key(name, lang, part), text)
                .map_err(|e| err(format!("{part}: {e}")))?;
        }
        // Strict mode: render once with every variable set; an unknown one fails here.
        let checked = if name == DIGEST {
            self.render_lang(name, lang, &digest_sample())
        } else {
            self.render_lang(name, lang, &sample())
        };
        checked.map_err(|e| err(e.to_string()))?;
        self.origin
            .insert((name.to_owned(), lang.to_owned()), file.to_owned());
        Ok(())
    }

    /// Whether a template exists in a language.
    pub fn has(&self, name: &str, language: Language) -> bool {
        self.origin
            .contains_key(&(name.to_owned(), language.code().to_owned()))
    }

    /// Renders a template in a language (falling back to French when the desk's language has
    /// no version of it).
    pub fn render(
        &self,
        name: &str,
        language: Language,
        ctx: &Context,
    ) -> Result<Rendered, TemplateError> {
        self.render_lang(name, self.language_of(name, language), ctx)
    }

    /// Renders the daily digest in a language.
    pub fn render_digest(
        &self,
        language: Language,
        ctx: &DigestContext,
    ) -> Result<Rendered, TemplateError> {
        self.render_lang(DIGEST, self.language_of(DIGEST, language), ctx)
    }

    /// The language a template is rendered in: the one asked for, or French.
    fn language_of(&self, name: &str, language: Language) -> &'static str {
        if self.has(name, language) {
            language.code()
        } else {
            "fr"
        }
    }

    fn render_lang(
        &self,
        name: &str,
        lang: &str,
        ctx: &impl Serialize,
    ) -> Result<Rendered, TemplateError> {
        let err = |e: handlebars::RenderError| TemplateError {
            file: format!("{lang}/{name}.hbs"),
            message: e.to_string(),
        };
        if !self.registry.has_template(&key(name, lang, "subject")) {
            return Err(TemplateError {
                file: format!("{lang}/{name}.hbs"),
                message: "no such template".into(),
            });
        }
        let subject = self
            .registry
            .render(&key(name, lang, "subject"), ctx)
            .map_err(err)?;
        let text = self
            .registry
            .render(&key(name, lang, "body"), ctx)
            .map_err(err)?;
        // No header injection: a subject is one line.
        let subject = subject.replace(['\r', '\n'], " ").trim().to_owned();
        let html = to_html(&text);
        Ok(Rendered {
            subject,
            text,
            html,
        })
    }

    /// Names of all templates available in a language.
    pub fn names(&self, language: Language) -> Vec<String> {
        let lang = language.code();
        self.origin
            .keys()
            .filter(|(_, l)| l == lang)
            .map(|(n, _)| n.clone())
            .collect()
    }
}

fn key(name: &str, lang: &str, part: &str) -> String {
    format!("{lang}/{name}/{part}")
}

fn registry() -> Handlebars<'static> {
    let mut h = Handlebars::new();
    h.set_strict_mode(true);
    // Text is rendered as text; the HTML part escapes the rendered text as a whole.
    h.register_escape_fn(handlebars::no_escape);
    h
}

/// A context with every variable set, used to check templates.
fn sample() -> Context {
    Context {
        desk: "Guichet".into(),
        request: RequestRef {
            title: "Titre".into(),
            reference: "REF".into(),
        },
        step: "Étape".into(),
        deadline: "01/01/2030".into(),
        role: "Rôle".into(),
        link: "https://guichet.example/x".into(),
    }
}

/// A digest with every variable set (two tasks, one overdue), used to check its templates.
fn digest_sample() -> DigestContext {
    let c = sample();
    let task = |overdue| DigestTask {
        desk: c.desk.clone(),
        request: c.request.clone(),
        step: c.step.clone(),
        deadline: c.deadline.clone(),
        role: c.role.clone(),
        link: c.link.clone(),
        overdue,
    };
    DigestContext {
        count: 2,
        more_than: false,
        several: true,
        shown: 2,
        truncated: false,
        tasks: vec![task(true), task(false)],
        inbox: "https://guichet.example/inbox".into(),
        preferences: "https://guichet.example/preferences".into(),
    }
}

/// Text a person wrote (a request's title), written so that no mail client makes a link of
/// it: the desk's emails are trusted, and a title such as `https://evil.example/login` would
/// otherwise be a phishing link from the trusted sender. A scheme `http` becomes `hxxp`, and
/// the dots of whatever reads as a domain name are written `[.]` (`evil[.]example`).
pub fn defang(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            let lower = word.to_ascii_lowercase();
            let mut word = word.to_owned();
            if let Some(at) = lower.find("http")
                && lower[at..]
                    .trim_start_matches("http")
                    .trim_start_matches('s')
                    .starts_with("://")
            {
                word.replace_range(at + 1..at + 3, "xx");
            }
            if lower.contains("://") || lower.starts_with("www.") || domain_like(&lower) {
                word = word.replace('.', "[.]");
            }
            word
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `labels.tld` (two labels or more, the last alphabetic), before any `/`, `?` or `:`, and
/// after any opening punctuation.
fn domain_like(word: &str) -> bool {
    let host = word
        .trim_start_matches(|c: char| !c.is_alphanumeric())
        .split(['/', '?', ':', '#'])
        .next()
        .unwrap_or("")
        .trim_end_matches(|c: char| !c.is_alphanumeric());
    let labels: Vec<&str> = host.split('.').collect();
    labels.len() >= 2
        && labels
            .iter()
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_alphanumeric() || c == '-'))
        && labels
            .last()
            .is_some_and(|tld| tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Plain text to simple HTML: escaped, paragraphs on blank lines, line breaks kept, and
/// http(s) URLs made clickable.
fn to_html(text: &str) -> String {
    let mut out = String::from(
        "<!DOCTYPE html>\n<html><body style=\"font-family: sans-serif; line-height: 1.4\">\n",
    );
    for para in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        out.push_str("<p>");
        let lines: Vec<String> = para.lines().map(linkify).collect();
        out.push_str(&lines.join("<br>\n"));
        out.push_str("</p>\n");
    }
    out.push_str("</body></html>\n");
    out
}

fn linkify(line: &str) -> String {
    line.split(' ')
        .map(|word| {
            if word.starts_with("https://") || word.starts_with("http://") {
                let e = escape(word);
                format!("<a href=\"{e}\">{e}</a>")
            } else {
                escape(word)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_standard_template_exists_in_both_languages() {
        let t = Templates::builtin();
        for name in guichet_definitions::templates::STANDARD {
            assert!(t.has(name, Language::Fr), "{name} fr");
            assert!(t.has(name, Language::En), "{name} en");
        }
        // The standard ones, the daily digest and the follow-up link.
        assert_eq!(
            t.names(Language::Fr).len(),
            guichet_definitions::templates::STANDARD.len() + 2
        );
        for internal in [DIGEST, FOLLOW_LINK] {
            assert!(t.has(internal, Language::Fr) && t.has(internal, Language::En));
            assert!(!guichet_definitions::templates::is_standard(internal));
        }
    }

    #[test]
    fn a_title_never_becomes_a_link() {
        assert_eq!(
            defang("Voir https://evil.example/login?x=1 ou HTTP://Evil.example"),
            "Voir hxxps://evil[.]example/login?x=1 ou HxxP://Evil[.]example"
        );
        assert_eq!(defang("(www.evil.example)"), "(www[.]evil[.]example)");
        assert_eq!(defang("evil.example/login."), "evil[.]example/login[.]");
        for plain in [
            "Étude v2.0 du parcours",
            "e.g. 3.5 mg",
            "R&D <script>",
            "a@b",
        ] {
            assert_eq!(defang(plain), plain);
        }
        let t = Templates::builtin();
        let mut ctx = sample();
        ctx.request.title = defang("Gagnez https://evil.example/");
        let r = t.render("tache-assignee", Language::Fr, &ctx).unwrap();
        assert!(!r.html.contains("evil.example"), "{}", r.html);
        assert_eq!(r.html.matches("<a href=").count(), 1, "{}", r.html);
    }

    #[test]
    fn renders_text_and_escaped_html() {
        let t = Templates::builtin();
        let mut ctx = sample();
        ctx.request.title = "R&D <script>".into();
        let r = t.render("tache-assignee", Language::Fr, &ctx).unwrap();
        assert_eq!(r.subject, "[Guichet] Nouvelle tâche : Étape");
        assert!(r.text.contains("« R&D <script> »"));
        assert!(r.html.contains("R&amp;D &lt;script&gt;"));
        assert!(!r.html.contains("<script>"));
        assert!(r.html.contains("<a href=\"https://guichet.example/x\">"));
        let en = t.render("tache-assignee", Language::En, &ctx).unwrap();
        assert!(en.subject.starts_with("[Guichet] New task"));
    }

    #[test]
    fn renders_the_digest_in_both_languages() {
        let t = Templates::builtin();
        let mut ctx = digest_sample();
        ctx.tasks[1].deadline = String::new();
        let r = t.render_digest(Language::Fr, &ctx).unwrap();
        assert_eq!(r.subject, "[Guichet] Vos tâches en attente : 2");
        let expected = "Bonjour,\n\nVoici les 2 tâches qui vous attendent.\n\n\
- EN RETARD : Étape (Rôle), demande « Titre » (référence REF), Guichet, échéance le 01/01/2030.\n  https://guichet.example/x\n\
- Étape (Rôle), demande « Titre » (référence REF), Guichet.\n  https://guichet.example/x\n\n\
Toutes vos tâches : https://guichet.example/inbox\n";
        assert!(r.text.starts_with(expected), "{}", r.text);
        assert_eq!(r.html.matches("<a href=").count(), 4, "{}", r.html);
        ctx.count = 1000;
        ctx.more_than = true;
        ctx.truncated = true;
        let en = t.render_digest(Language::En, &ctx).unwrap();
        assert_eq!(en.subject, "[Guichet] Your pending tasks: 1000+");
        assert!(
            en.text
                .contains("Here are the 1000+ tasks waiting for you; the 2 most urgent are below."),
            "{}",
            en.text
        );
    }

    fn dir_with(files: &[(&str, &str)]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "guichet-templates-{}-{}",
            std::process::id(),
            files.len() * 31 + files.first().map_or(0, |f| f.0.len())
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, content) in files {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        dir
    }

    #[test]
    fn overrides_are_checked_strictly() {
        let dir = dir_with(&[
            (
                "fr/tache-rappel.hbs",
                "Rappel {{step}}\n---\nBonjour, {{lien}}\n",
            ),
            ("fr/relance.hbs", "Relance\n---\n{{{link}}}\n"),
            ("en/bad.hbs", "no separator"),
            (
                "fr/ok.hbs",
                "Objet {{request.title}}\n---\nCorps {{link}}\n",
            ),
        ]);
        let errors = Templates::with_overrides(&dir).unwrap_err();
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 3, "{messages:#?}");
        assert!(
            messages
                .iter()
                .any(|m| m.contains("tache-rappel") && m.contains("lien")),
            "{messages:#?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m.contains("relance") && m.contains("unescaped"))
        );
        assert!(
            messages
                .iter()
                .any(|m| m.contains("bad") && m.contains("---"))
        );
        let dir = dir_with(&[(
            "fr/ok.hbs",
            "Objet {{request.title}}\n---\nCorps {{link}}\n",
        )]);
        let t = Templates::with_overrides(&dir).unwrap();
        assert!(t.has("ok", Language::Fr));
        // English falls back to French when a desk template has no English version.
        assert_eq!(
            t.render("ok", Language::En, &sample()).unwrap().subject,
            "Objet Titre"
        );
    }
}
