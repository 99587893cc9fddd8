//! The pages in French and English: every text a person reads on a page comes from a Project
//! Fluent catalogue (`web/locales/{fr,en}.ftl`), never from a string in the code.
//!
//! The reader's language is chosen once per HTTP request, in this order: the language a
//! signed-in staff member chose on their preferences page, else the browser's
//! `Accept-Language`, else the language of the desk the page is about, else French. The
//! [`choose`] middleware reads the header and keeps the choice for the request's task (as
//! Rails and Django keep a request's locale); the staff sign-in and the pages about a desk
//! complete it ([`prefer`], [`desk`]); [`current`] says what it came to.
//!
//! Pages call the catalogue through the `t` helper of their templates: `{{t "key"}}`, with
//! arguments as hash parameters (`{{t "request-ref" reference=reference}}`), which are
//! HTML-escaped; the catalogue itself is trusted (it ships with the binary) and may hold
//! markup such as `<strong>`. Rust code calls [`t`] and [`tr`].

use std::cell::Cell;
use std::sync::OnceLock;

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use guichet_definitions::model::Language;

/// The catalogues' sources, by language.
pub(crate) const SOURCES: [(Language, &str); 2] = [
    (Language::Fr, include_str!("../locales/fr.ftl")),
    (Language::En, include_str!("../locales/en.ftl")),
];

/// The languages of the pages, in the order offered.
pub(crate) const LANGUAGES: [Language; 2] = [Language::Fr, Language::En];

struct Catalogues {
    fr: FluentBundle<FluentResource>,
    en: FluentBundle<FluentResource>,
}

impl std::fmt::Debug for Catalogues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Catalogues")
    }
}

fn catalogues() -> &'static Catalogues {
    static CATALOGUES: OnceLock<Catalogues> = OnceLock::new();
    CATALOGUES.get_or_init(|| {
        let bundle = |language: Language, source: &str| {
            let locale = language
                .code()
                .parse()
                .unwrap_or_else(|e| panic!("locale {}: {e:?}", language.code()));
            let mut bundle = FluentBundle::new_concurrent(vec![locale]);
            // Pages are HTML: no Unicode isolation marks around arguments.
            bundle.set_use_isolating(false);
            // The catalogues ship with the binary; a broken one is a build defect, caught by
            // the tests below.
            let resource = FluentResource::try_new(source.to_owned())
                .unwrap_or_else(|(_, e)| panic!("catalogue {}: {e:?}", language.code()));
            if let Err(e) = bundle.add_resource(resource) {
                panic!("catalogue {}: {e:?}", language.code());
            }
            bundle
        };
        Catalogues {
            fr: bundle(Language::Fr, SOURCES[0].1),
            en: bundle(Language::En, SOURCES[1].1),
        }
    })
}

/// A message of the catalogue, without arguments.
pub(crate) fn t(language: Language, id: &str) -> String {
    tr(language, id, &[])
}

/// A message of the catalogue with its arguments. A message missing from the catalogue is
/// a defect the tests catch; should one slip through, its id is shown rather than nothing.
pub(crate) fn tr(language: Language, id: &str, args: &[(&str, Arg<'_>)]) -> String {
    let bundle = match language {
        Language::Fr => &catalogues().fr,
        Language::En => &catalogues().en,
    };
    let Some(pattern) = bundle.get_message(id).and_then(|m| m.value()) else {
        tracing::error!(
            id,
            language = language.code(),
            "a message is missing from the catalogue"
        );
        return id.to_owned();
    };
    let mut fluent_args = FluentArgs::new();
    for (name, value) in args {
        fluent_args.set(*name, value.fluent());
    }
    let mut errors = Vec::new();
    let text = bundle.format_pattern(pattern, Some(&fluent_args), &mut errors);
    if !errors.is_empty() {
        tracing::error!(
            id,
            language = language.code(),
            ?errors,
            "a message could not be formatted"
        );
    }
    text.into_owned()
}

/// An argument of a message.
#[derive(Debug, Clone)]
pub(crate) enum Arg<'a> {
    Text(std::borrow::Cow<'a, str>),
    Number(f64),
}

impl Arg<'_> {
    fn fluent(&self) -> FluentValue<'static> {
        match self {
            Arg::Text(s) => FluentValue::from(s.to_string()),
            Arg::Number(n) => FluentValue::from(*n),
        }
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(s: &'a str) -> Self {
        Arg::Text(s.into())
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(s: &'a String) -> Self {
        Arg::Text(s.as_str().into())
    }
}

impl From<i64> for Arg<'_> {
    #[allow(clippy::cast_precision_loss)]
    fn from(n: i64) -> Self {
        Arg::Number(n as f64)
    }
}

impl From<u64> for Arg<'_> {
    #[allow(clippy::cast_precision_loss)]
    fn from(n: u64) -> Self {
        Arg::Number(n as f64)
    }
}

impl From<usize> for Arg<'_> {
    #[allow(clippy::cast_precision_loss)]
    fn from(n: usize) -> Self {
        Arg::Number(n as f64)
    }
}

/// The `t` helper of the templates, for one language: `{{t "key" name=value}}`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Helper(pub Language);

impl handlebars::HelperDef for Helper {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &handlebars::Helper<'rc>,
        _: &'reg handlebars::Handlebars<'reg>,
        _: &'rc handlebars::Context,
        _: &mut handlebars::RenderContext<'reg, 'rc>,
        out: &mut dyn handlebars::Output,
    ) -> handlebars::HelperResult {
        let id = h
            .param(0)
            .and_then(|p| p.value().as_str())
            .ok_or_else(|| handlebars::RenderErrorReason::ParamNotFoundForIndex("t", 0))?;
        // Arguments come from the request (titles, names): escaped before they meet the
        // catalogue's markup.
        let args: Vec<(&str, Arg<'_>)> = h
            .hash()
            .iter()
            .map(|(name, v)| {
                let arg = match v.value() {
                    serde_json::Value::Number(n) => Arg::Number(n.as_f64().unwrap_or(0.0)),
                    serde_json::Value::String(s) => Arg::Text(handlebars::html_escape(s).into()),
                    serde_json::Value::Null => Arg::Text("".into()),
                    other => Arg::Text(handlebars::html_escape(&other.to_string()).into()),
                };
                (*name, arg)
            })
            .collect();
        out.write(&tr(self.0, id, &args))?;
        Ok(())
    }
}

/// How the reader's language was chosen, as far as it is known.
#[derive(Debug, Clone, Copy, Default)]
struct Choice {
    /// The signed-in staff member's own choice.
    preferred: Option<Language>,
    /// The browser's best language among ours.
    accepted: Option<Language>,
    /// The desk the page is about.
    desk: Option<Language>,
}

tokio::task_local! {
    static READER: Cell<Choice>;
}

/// The reader's language for the page being made.
pub(crate) fn current() -> Language {
    READER
        .try_with(|c| {
            let c = c.get();
            c.preferred.or(c.accepted).or(c.desk)
        })
        .ok()
        .flatten()
        .unwrap_or(Language::Fr)
}

/// The signed-in staff member chose a language: it comes first.
pub(crate) fn prefer(language: Option<Language>) {
    let _ = READER.try_with(|c| {
        let mut choice = c.get();
        choice.preferred = choice.preferred.or(language);
        c.set(choice);
    });
}

/// The page is about a desk (or a request, for its sponsor): its language is used when the
/// reader named none of ours.
pub(crate) fn desk(language: Language) {
    let _ = READER.try_with(|c| {
        let mut choice = c.get();
        choice.desk = Some(language);
        c.set(choice);
    });
}

/// The best of our languages in an `Accept-Language` header, if it names one.
pub(crate) fn accepted(header: &str) -> Option<Language> {
    let requested = fluent_langneg::accepted_languages::parse(header);
    let available: Vec<unic_langid::LanguageIdentifier> = LANGUAGES
        .iter()
        .filter_map(|l| l.code().parse().ok())
        .collect();
    let chosen = fluent_langneg::negotiate_languages(
        &requested,
        &available,
        None,
        fluent_langneg::NegotiationStrategy::Lookup,
    );
    chosen
        .first()
        .and_then(|l| Language::from_code(l.language.as_str()))
}

/// Middleware: the request's language as far as its headers tell, kept for its task.
pub(crate) async fn choose(request: Request, next: Next) -> Response {
    // The API speaks English to programs.
    if request.uri().path().starts_with("/api/") {
        return next.run(request).await;
    }
    let accepted = request
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(accepted);
    let choice = Choice {
        accepted,
        ..Choice::default()
    };
    let mut response = READER.scope(Cell::new(choice), next.run(request)).await;
    // What a cache must key a page on.
    response.headers_mut().append(
        header::VARY,
        header::HeaderValue::from_static("accept-language"),
    );
    response
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every message id of a catalogue.
    pub(crate) fn ids(source: &str) -> std::collections::BTreeSet<String> {
        let resource = FluentResource::try_new(source.to_owned()).expect("catalogue parses");
        resource
            .entries()
            .filter_map(|e| match e {
                fluent_syntax::ast::Entry::Message(m) => Some(m.id.name.to_owned()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn both_catalogues_say_the_same_things() {
        let fr = ids(SOURCES[0].1);
        let en = ids(SOURCES[1].1);
        let only_fr: Vec<_> = fr.difference(&en).collect();
        let only_en: Vec<_> = en.difference(&fr).collect();
        assert!(
            only_fr.is_empty() && only_en.is_empty(),
            "missing in en: {only_fr:?}; missing in fr: {only_en:?}"
        );
        assert!(fr.len() > 100, "{} messages", fr.len());
    }

    /// The value of each message, by id.
    fn values(source: &str) -> std::collections::BTreeMap<String, String> {
        let resource = FluentResource::try_new(source.to_owned()).expect("catalogue parses");
        resource
            .entries()
            .filter_map(|e| match e {
                fluent_syntax::ast::Entry::Message(m) => Some((
                    m.id.name.to_owned(),
                    m.value
                        .iter()
                        .flat_map(|v| &v.elements)
                        .map(|e| match e {
                            fluent_syntax::ast::PatternElement::TextElement { value } => {
                                (*value).to_owned()
                            }
                            fluent_syntax::ast::PatternElement::Placeable { .. } => "{}".to_owned(),
                        })
                        .collect::<String>(),
                )),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn no_message_is_left_untranslated() {
        let fr = values(SOURCES[0].1);
        let en = values(SOURCES[1].1);
        // One word may be the same in both (Administration, Version, Date).
        let same: Vec<_> = fr
            .iter()
            .filter(|(id, v)| en.get(*id) == Some(*v) && v.contains(' '))
            .map(|(id, _)| id)
            .collect();
        assert!(same.is_empty(), "the same in French and English: {same:?}");
    }

    #[test]
    fn the_browser_picks_among_our_languages() {
        assert_eq!(accepted("en-GB,en;q=0.9,fr;q=0.8"), Some(Language::En));
        assert_eq!(accepted("fr-FR,fr;q=0.9,en;q=0.5"), Some(Language::Fr));
        assert_eq!(accepted("de-DE,de;q=0.9,en;q=0.5"), Some(Language::En));
        assert_eq!(accepted("de, it"), None);
        assert_eq!(accepted(""), None);
        assert_eq!(accepted("*"), None);
    }

    #[test]
    fn arguments_fill_a_message() {
        let fr = tr(
            Language::Fr,
            "request-ref",
            &[("reference", "AB12CD34".into())],
        );
        let en = tr(
            Language::En,
            "request-ref",
            &[("reference", "AB12CD34".into())],
        );
        assert!(fr.contains("AB12CD34") && fr.contains("Référence"), "{fr}");
        assert!(en.contains("AB12CD34") && en.contains("Reference"), "{en}");
        assert_eq!(t(Language::En, "no-such-message"), "no-such-message");
    }
}
