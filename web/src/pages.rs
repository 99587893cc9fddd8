//! The HTML pages: handlebars templates embedded from `web/pages/`, HTML-escaped, in strict
//! mode; each page is rendered into the layout.

use handlebars::Handlebars;
use serde::Serialize;

const PAGES: &[(&str, &str)] = &[
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
    registry: Handlebars<'static>,
}

impl Pages {
    /// The pages, compiled once for the process.
    pub fn get() -> &'static Pages {
        static PAGES: std::sync::OnceLock<Pages> = std::sync::OnceLock::new();
        PAGES.get_or_init(Pages::new)
    }

    pub fn new() -> Pages {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
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
        Pages { registry }
    }

    /// A whole HTML document: the page inside the layout.
    pub fn render(&self, page: &str, title: &str, data: &impl Serialize) -> String {
        let body = self.registry.render(page, data).unwrap_or_else(|e| {
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
            lang: "fr",
            title,
            body: &body,
        };
        self.registry
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
