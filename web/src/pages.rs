//! The HTML pages: handlebars templates embedded from `web/pages/`, HTML-escaped, in strict
//! mode; each page is rendered into the layout. The templates hold no text of their own: they
//! say it with the `t` helper ([`crate::i18n`]), and are compiled once per language.

use guichet_definitions::model::Language;
use handlebars::Handlebars;
use serde::Serialize;

use crate::i18n;

pub(crate) const PAGES: &[(&str, &str)] = &[
    ("layout", include_str!("../pages/layout.hbs")),
    ("home", include_str!("../pages/home.hbs")),
    ("form-fields", include_str!("../pages/form-fields.hbs")),
    ("desk", include_str!("../pages/desk.hbs")),
    ("submitted", include_str!("../pages/submitted.hbs")),
    ("task", include_str!("../pages/task.hbs")),
    ("status", include_str!("../pages/status.hbs")),
    ("done", include_str!("../pages/done.hbs")),
    ("invalid-link", include_str!("../pages/invalid-link.hbs")),
    ("error", include_str!("../pages/error.hbs")),
    ("login", include_str!("../pages/login.hbs")),
    ("inbox", include_str!("../pages/inbox.hbs")),
    ("preferences", include_str!("../pages/preferences.hbs")),
    ("request", include_str!("../pages/request.hbs")),
    ("dossier", include_str!("../pages/dossier.hbs")),
    ("withdraw", include_str!("../pages/withdraw.hbs")),
    ("lost-link", include_str!("../pages/lost-link.hbs")),
    ("admin-nav", include_str!("../pages/admin-nav.hbs")),
    ("admin", include_str!("../pages/admin.hbs")),
    (
        "admin-indicators",
        include_str!("../pages/admin-indicators.hbs"),
    ),
    (
        "admin-requests",
        include_str!("../pages/admin-requests.hbs"),
    ),
    ("admin-outbox", include_str!("../pages/admin-outbox.hbs")),
    ("admin-users", include_str!("../pages/admin-users.hbs")),
    ("admin-token", include_str!("../pages/admin-token.hbs")),
];

/// Pages also used as partials inside others.
const PARTIALS: &[&str] = &["form-fields", "admin-nav", "dossier"];

#[derive(Debug)]
pub struct Pages {
    fr: Handlebars<'static>,
    en: Handlebars<'static>,
}

impl Pages {
    /// The pages, compiled once for the process.
    pub fn get() -> &'static Pages {
        static PAGES: std::sync::OnceLock<Pages> = std::sync::OnceLock::new();
        PAGES.get_or_init(Pages::new)
    }

    pub fn new() -> Pages {
        Pages {
            fr: Self::compile(Language::Fr),
            en: Self::compile(Language::En),
        }
    }

    fn compile(language: Language) -> Handlebars<'static> {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_helper("t", Box::new(i18n::Helper(language)));
        for (name, source) in PAGES {
            // The pages ship with the binary; a broken one is a build defect, caught by tests.
            if let Err(e) = registry.register_template_string(name, *source) {
                panic!("page {name}: {e}");
            }
            if PARTIALS.contains(name)
                && let Err(e) = registry.register_partial(name, *source)
            {
                panic!("partial {name}: {e}");
            }
        }
        registry
    }

    /// A whole HTML document in a language: the page inside the layout.
    pub fn render(
        &self,
        language: Language,
        page: &str,
        title: &str,
        data: &impl Serialize,
    ) -> String {
        let registry = match language {
            Language::Fr => &self.fr,
            Language::En => &self.en,
        };
        let body = registry.render(page, data).unwrap_or_else(|e| {
            format!(
                "<p>page {page} could not be rendered: {}</p>",
                escape(&e.to_string())
            )
        });
        #[derive(Serialize)]
        struct Layout<'a> {
            lang: &'a str,
            title: &'a str,
            body: &'a str,
        }
        let layout = Layout {
            lang: language.code(),
            title,
            body: &body,
        };
        registry
            .render("layout", &layout)
            .unwrap_or_else(|e| format!("layout could not be rendered: {}", escape(&e.to_string())))
    }
}

impl Default for Pages {
    fn default() -> Self {
        Pages::new()
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message ids a text names as `{open}"id"`.
    fn named(text: &str, open: &str) -> Vec<String> {
        text.match_indices(open)
            .filter_map(|(at, _)| {
                let rest = &text[at + open.len()..];
                let id: String = rest.chars().take_while(|c| *c != '"').collect();
                (!id.is_empty()
                    && id
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
                .then_some(id)
            })
            .collect()
    }

    #[test]
    fn every_message_the_pages_and_the_code_name_exists() {
        let fr = crate::i18n::tests::ids(crate::i18n::SOURCES[0].1);
        let mut missing = Vec::new();
        for (name, source) in PAGES {
            for id in named(source, "{{t \"") {
                if !fr.contains(&id) {
                    missing.push(format!("{name}.hbs: {id}"));
                }
            }
        }
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut checked = 0;
        let mut files = vec![];
        for dir in [src.clone(), src.join("api")] {
            for file in std::fs::read_dir(dir).expect("web/src") {
                let path = file.expect("a file").path();
                if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
        for path in files {
            let code = std::fs::read_to_string(&path).expect("a source file");
            for open in [
                "text(\"",
                "text_with(\"",
                "expired_form(\"",
                "refused(\"",
                "invalid_field(\"email\", \"",
                "invalid_field(\"name\", \"",
            ] {
                for id in named(&code, open) {
                    checked += 1;
                    if !fr.contains(&id) {
                        missing.push(format!("{}: {id}", path.display()));
                    }
                }
            }
        }
        assert!(checked > 50, "{checked} ids read from the code");
        assert!(missing.is_empty(), "not in the catalogue: {missing:?}");
    }

    #[test]
    fn templates_hold_no_text_of_their_own() {
        // Names that are the same in every language.
        const NAMES: &[&str] = &["guichet", "Français", "English", "p90"];
        for (name, source) in PAGES {
            let mut rest = String::new();
            let mut depth = (0, 0); // inside {{ }}, inside < >
            let body = source.split("</style>").last().unwrap_or(source);
            let mut it = body.chars().peekable();
            while let Some(c) = it.next() {
                match c {
                    '{' if it.peek() == Some(&'{') => depth.0 += 1,
                    '}' if it.peek() == Some(&'}') && depth.0 > 0 => {
                        depth.0 -= 1;
                        it.next();
                        while it.peek() == Some(&'}') {
                            it.next();
                        }
                    }
                    '<' if depth.0 == 0 => depth.1 += 1,
                    '>' if depth.0 == 0 && depth.1 > 0 => depth.1 -= 1,
                    _ if depth == (0, 0) => rest.push(c),
                    _ => {}
                }
            }
            let words: Vec<&str> = rest
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| w.chars().any(char::is_alphabetic) && !NAMES.contains(w))
                .collect();
            assert!(
                words.is_empty(),
                "{name}.hbs says {words:?} outside the catalogue"
            );
        }
    }
}
