//! The configuration file: every setting of `guichet` in one TOML file, read before the
//! command line. Each key is a setting's environment variable without `GUICHET_`, in lower
//! case (`smtp_host = "mail.hopital.example"` is `GUICHET_SMTP_HOST`). Precedence: a flag on
//! the command line, then the environment, then the file, then the default.
//!
//! The file is `--config FILE` (or `GUICHET_CONFIG`), else `guichet.toml` in the working
//! directory when there is one.

use std::path::{Path, PathBuf};

/// Every setting the file may hold, as its environment variable.
pub(crate) const SETTINGS: &[&str] = &[
    "GUICHET_DATABASE",
    "GUICHET_DOCUMENTS",
    "GUICHET_LISTEN",
    "GUICHET_BASE_URL",
    "GUICHET_SMTP_HOST",
    "GUICHET_SMTP_PORT",
    "GUICHET_SMTP_TLS",
    "GUICHET_SMTP_USERNAME",
    "GUICHET_SMTP_PASSWORD",
    "GUICHET_MAIL_FROM",
    "GUICHET_TEMPLATES",
    "GUICHET_PROVIDERS",
    "GUICHET_PROVIDER_SECRETS",
    "GUICHET_DIGEST_HOUR",
    "GUICHET_LOG",
    "GUICHET_LOG_FORMAT",
    "GUICHET_MAX_IN_FLIGHT",
    "GUICHET_LIMIT_INTAKE",
    "GUICHET_LIMIT_LINKS",
    "GUICHET_LIMIT_LOGIN",
    "GUICHET_TRUSTED_PROXIES",
    "GUICHET_OUTBOX_LEASE",
    "GUICHET_NO_EMAIL",
];

/// The file named by `--config FILE` / `--config=FILE` in the arguments, by `GUICHET_CONFIG`,
/// or `guichet.toml` when it exists.
pub(crate) fn path(args: &[String]) -> Option<PathBuf> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(p) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(p));
        }
    }
    if let Some(p) = std::env::var_os("GUICHET_CONFIG") {
        return Some(PathBuf::from(p));
    }
    let default = PathBuf::from("guichet.toml");
    default.exists().then_some(default)
}

/// The settings of a file, as (variable, value), or what is wrong with it and where.
pub(crate) fn read(path: &Path) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the configuration file {}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

pub(crate) fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let at = e
            .span()
            .map(|s| {
                let line = text[..s.start].matches('\n').count() + 1;
                format!("line {line}: ")
            })
            .unwrap_or_default();
        format!("{at}{}", e.message())
    })?;
    let mut out = Vec::new();
    for (key, value) in table {
        let var = format!("GUICHET_{}", key.to_uppercase());
        if !SETTINGS.contains(&var.as_str()) {
            let known: Vec<String> = SETTINGS
                .iter()
                .map(|s| s.trim_start_matches("GUICHET_").to_lowercase())
                .collect();
            return Err(format!(
                "unknown setting `{key}`; the settings are: {}",
                known.join(", ")
            ));
        }
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s),
                    other => Err(format!("`{key}` lists strings, not {}", other.type_str())),
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            other => {
                return Err(format!(
                    "`{key}` must be a string or a number, not {}",
                    other.type_str()
                ));
            }
        };
        out.push((var, value));
    }
    Ok(out)
}

/// Makes the file's values the defaults of the arguments that read those variables, in
/// every subcommand.
pub(crate) fn apply(mut command: clap::Command, settings: &[(String, String)]) -> clap::Command {
    let ids: Vec<(String, String)> = command
        .get_arguments()
        .filter_map(|a| {
            let var = a.get_env()?.to_str()?;
            let value = settings.iter().find(|(v, _)| v == var)?;
            Some((a.get_id().to_string(), value.1.clone()))
        })
        .collect();
    for (id, value) in ids {
        // Read once at start: leaking the few values gives them the lifetime clap wants.
        let value: &'static str = Box::leak(value.into_boxed_str());
        command = command.mut_arg(id, |a| a.default_value(value));
    }
    let subcommands: Vec<String> = command
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect();
    for name in subcommands {
        command = command.mut_subcommand(name, |c| apply(c, settings));
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_map_to_their_variables() {
        let got = parse(
            "database = \"sqlite://desk.db\"\nsmtp_port = 465\nproviders = [\"a=http://x\", \"b=http://y\"]\n",
        )
        .unwrap_or_default();
        assert_eq!(
            got,
            [
                ("GUICHET_DATABASE".to_owned(), "sqlite://desk.db".to_owned()),
                (
                    "GUICHET_PROVIDERS".to_owned(),
                    "a=http://x,b=http://y".to_owned()
                ),
                ("GUICHET_SMTP_PORT".to_owned(), "465".to_owned()),
            ]
        );
    }

    #[test]
    fn mistakes_name_the_line_or_the_setting() {
        let e = parse("database = \"x\"\nsmtp_hots = \"y\"\n").unwrap_err();
        assert!(
            e.contains("unknown setting `smtp_hots`") && e.contains("smtp_host"),
            "{e}"
        );
        let e = parse("database = \"x\"\nlisten = \n").unwrap_err();
        assert!(e.starts_with("line 2: "), "{e}");
    }
}
