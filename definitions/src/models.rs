//! The three desk models of the PHOENIX white paper, shipped with the binary so that
//! `guichet serve` has them loaded on a fresh machine. The files live in `definitions/models/`.

/// (file name, source) of each shipped model.
pub const ALL: &[(&str, &str)] = &[
    (
        "interne-decentralise.kdl",
        include_str!("../models/interne-decentralise.kdl"),
    ),
    (
        "interne-solutions-externes.kdl",
        include_str!("../models/interne-solutions-externes.kdl"),
    ),
    ("externe.kdl", include_str!("../models/externe.kdl")),
];

/// The source of the shipped model named `name` (its file name without `.kdl`, which is also
/// its process name), if there is one.
pub fn source(name: &str) -> Option<&'static str> {
    ALL.iter()
        .find(|(file, _)| file.strip_suffix(".kdl") == Some(name))
        .map(|(_, source)| *source)
}
