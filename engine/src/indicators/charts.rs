//! Charts as standalone SVG, for reports a person reads at a glance: box plots of a
//! duration per desk model, and stacked bars (time per step, waiting against working).
//! Server-rendered, no script, readable in a browser, a mail client or an HTML report file.
//! Every text is escaped.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use guichet_definitions::model::{BuildingBlock, Language};

use crate::indicators::kpi::{MatrixRow, StepRow};
use crate::indicators::stats::Stats;

/// Colours for series and segments, readable on white and distinct for most colour vision.
pub const PALETTE: &[&str] = &[
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f",
];

const WIDTH: f64 = 780.0;
const LABEL_W: f64 = 250.0;
const ROW_H: f64 = 34.0;
const TOP: f64 = 40.0;

/// Escapes text for SVG and HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A round upper bound for an axis and its tick step: the step is 1, 2, 2.5 or 5 times a
/// power of ten, about a fifth of the largest value, and the bound the first step above it.
fn axis(max: f64) -> (f64, f64) {
    if max <= 0.0 || !max.is_finite() {
        return (1.0, 0.25);
    }
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    ((max / step).ceil() * step, step)
}

/// A tick label: whole numbers as such, small steps with the decimals they need.
fn fmt_num(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        return format!("{x:.0}");
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let decimals = ((-x.abs().log10()).ceil().max(0.0) as usize + 1).min(6);
    format!("{x:.decimals$}").trim_end_matches('0').to_owned()
}

fn header(out: &mut String, title: &str, height: f64) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" font-family="sans-serif" font-size="12"><title>{t}</title><rect width="100%" height="100%" fill="white"/><text x="10" y="20" font-size="14" font-weight="bold">{t}</text>"#,
        t = esc(title)
    );
}

fn grid(out: &mut String, top: f64, unit: &str, bottom: f64) {
    let (max, step) = axis(top);
    let plot_w = WIDTH - LABEL_W - 30.0;
    let mut v = 0.0;
    while v <= max + step / 2.0 {
        let x = LABEL_W + v / max * plot_w;
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{bottom:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}</text>"##,
            bottom + 14.0,
            fmt_num(v)
        );
        v += step;
    }
    let _ = write!(
        out,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}</text>"##,
        LABEL_W + plot_w / 2.0,
        bottom + 30.0,
        esc(unit)
    );
}

fn scale(top: f64) -> impl Fn(f64) -> f64 {
    let (max, _) = axis(top);
    let plot_w = WIDTH - LABEL_W - 30.0;
    move |v| LABEL_W + (v / max).clamp(0.0, 1.0) * plot_w
}

/// One horizontal box plot per series: whiskers from min to max, the box from the first to
/// the third quartile, the median as a bar, the mean as a dot and the 90th percentile as a
/// tick.
pub fn box_plot(title: &str, unit: &str, series: &[(String, Stats)]) -> String {
    let height = TOP + ROW_H * series.len().max(1) as f64 + 50.0;
    let bottom = TOP + ROW_H * series.len().max(1) as f64;
    let mut out = String::new();
    header(&mut out, title, height);
    let top = series.iter().map(|(_, s)| s.max).fold(0.0, f64::max);
    grid(&mut out, top, unit, bottom);
    let x = scale(top);
    for (i, (label, s)) in series.iter().enumerate() {
        let y = TOP + ROW_H * i as f64 + ROW_H / 2.0;
        let colour = PALETTE[i % PALETTE.len()];
        let _ = write!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end">{} (n={})</text><line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#333"/><rect x="{:.1}" y="{:.1}" width="{:.1}" height="18" fill="{colour}" fill-opacity="0.6" stroke="#333"><title>{}: p25 {:.1}, median {:.1}, p75 {:.1}, mean {:.1}, p90 {:.1}, max {:.1}</title></rect><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#111" stroke-width="2"/><circle cx="{:.1}" cy="{y:.1}" r="3" fill="white" stroke="#111"/><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#111"/>"##,
            LABEL_W - 8.0,
            y + 4.0,
            esc(label),
            s.n,
            x(s.min),
            x(s.max),
            x(s.p25),
            y - 9.0,
            (x(s.p75) - x(s.p25)).max(1.0),
            esc(label),
            s.p25,
            s.median,
            s.p75,
            s.mean,
            s.p90,
            s.max,
            x(s.median),
            y - 9.0,
            x(s.median),
            y + 9.0,
            x(s.mean),
            x(s.p90),
            y - 6.0,
            x(s.p90),
            y + 6.0,
        );
    }
    out.push_str("</svg>");
    out
}

/// Horizontal stacked bars: one bar per row, one coloured segment per legend entry.
pub fn stacked_bars(
    title: &str,
    unit: &str,
    legend: &[&str],
    rows: &[(String, Vec<f64>)],
) -> String {
    let n = rows.len().max(1) as f64;
    let bottom = TOP + ROW_H * n;
    let height = bottom + 50.0 + 20.0;
    let mut out = String::new();
    header(&mut out, title, height);
    let top = rows
        .iter()
        .map(|(_, v)| v.iter().sum::<f64>())
        .fold(0.0, f64::max);
    grid(&mut out, top, unit, bottom);
    let x = scale(top);
    for (i, (label, values)) in rows.iter().enumerate() {
        let y = TOP + ROW_H * i as f64 + ROW_H / 2.0;
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LABEL_W - 8.0,
            y + 4.0,
            esc(label)
        );
        let mut acc = 0.0;
        for (j, v) in values.iter().enumerate() {
            let (a, b) = (x(acc), x(acc + v));
            acc += v;
            let name = legend.get(j).copied().unwrap_or("");
            let _ = write!(
                out,
                r##"<rect x="{a:.1}" y="{:.1}" width="{:.1}" height="18" fill="{}"><title>{}, {}: {v:.2} {}</title></rect>"##,
                y - 9.0,
                (b - a).max(0.0),
                PALETTE[j % PALETTE.len()],
                esc(label),
                esc(name),
                esc(unit)
            );
        }
    }
    let mut lx = LABEL_W;
    for (j, name) in legend.iter().enumerate() {
        let _ = write!(
            out,
            r#"<rect x="{lx:.1}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            height - 22.0,
            PALETTE[j % PALETTE.len()],
            lx + 16.0,
            height - 12.0,
            esc(name)
        );
        lx += 26.0 + 7.0 * name.chars().count() as f64;
    }
    out.push_str("</svg>");
    out
}

/// Waiting and working time of the slowest tasks (at most twelve), as stacked bars: the
/// chart of "where the time goes", shared by the dashboard and the simulation report.
pub fn task_times(title: &str, unit: &str, legend: [&str; 2], steps: &[&StepRow]) -> String {
    let rows: Vec<(String, Vec<f64>)> = steps
        .iter()
        .filter(|s| s.kind == "task")
        .take(12)
        .map(|s| {
            (
                s.title.clone(),
                vec![
                    s.waiting.map_or(0.0, |t| t.mean),
                    s.working.map_or(0.0, |t| t.mean),
                ],
            )
        })
        .collect();
    stacked_bars(title, unit, &legend, &rows)
}

fn block_name(b: BuildingBlock, language: Language) -> &'static str {
    let fr = language == Language::Fr;
    match b {
        BuildingBlock::General if fr => "général",
        BuildingBlock::General => "general",
        BuildingBlock::Catalogue => "catalogue",
        BuildingBlock::Uses if fr => "usages",
        BuildingBlock::Uses => "uses",
        BuildingBlock::Technical if fr => "technique",
        BuildingBlock::Technical => "technical",
        BuildingBlock::Regulatory if fr => "réglementaire",
        BuildingBlock::Regulatory => "regulatory",
        BuildingBlock::Valorisation => "valorisation",
    }
}

/// `maturité` as `Maturité`.
fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The matrix's own words, by language.
struct MatrixWords {
    label: &'static str,
    heading: &'static str,
    priority: &'static str,
    achieved: &'static str,
    not_priority: &'static str,
    maturity: &'static str,
    half: &'static str,
    not_enough: &'static str,
}

fn matrix_words(language: Language) -> MatrixWords {
    match language {
        Language::Fr => MatrixWords {
            label: "Maturité et performance par brique",
            heading: "Maturité × performance",
            priority: "Prioritaire",
            achieved: "Acquis",
            not_priority: "Non prioritaire",
            maturity: "maturité",
            half: "0,5",
            not_enough: "données insuffisantes",
        },
        Language::En => MatrixWords {
            label: "Maturity and performance by building block",
            heading: "Maturity × performance",
            priority: "Priority",
            achieved: "Achieved",
            not_priority: "Not a priority",
            maturity: "maturity",
            half: "0.5",
            not_enough: "not enough data",
        },
    }
}

/// The white paper's maturity x performance chart (3.3) as a standalone SVG: maturity across,
/// performance up, the priority quadrant (neither mature nor performant) highlighted, one
/// point per building block and desk. Blocks without both measures are listed underneath.
/// Its own words are in `language`.
pub fn matrix_svg(rows: &[MatrixRow], language: Language) -> String {
    let w = matrix_words(language);
    use std::fmt::Write;
    const COLOURS: &[&str] = &[
        "#0b5394", "#b45f06", "#38761d", "#741b47", "#45818e", "#7f6000",
    ];
    let (left, top, size) = (70.0, 40.0, 420.0);
    let desks: Vec<&str> = {
        let mut d: Vec<&str> = rows.iter().map(|r| r.desk.as_str()).collect();
        d.dedup();
        d
    };
    let missing: Vec<&MatrixRow> = rows
        .iter()
        .filter(|r| r.maturity.is_none() || r.performance.is_none())
        .collect();
    // (one fact and one indicator with a target are needed to place a block)
    let height = top + size + 70.0 + 18.0 * (desks.len() + missing.len()) as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="680" height="{height:.0}" viewBox="0 0 680 {height:.0}" font-family="sans-serif" font-size="12" role="img" aria-label="{}">"#,
        w.label
    );
    let _ = writeln!(
        out,
        r#"<text x="{left}" y="24" font-size="15" font-weight="bold">{}</text>"#,
        w.heading
    );
    let half = size / 2.0;
    // Quadrants: bottom-left is the priority.
    let quads = [
        (left, top + half, "#f4cccc", w.priority),
        (left + half, top, "#d9ead3", w.achieved),
        (left, top, "#fff2cc", w.not_priority),
        (left + half, top + half, "#fff2cc", w.not_priority),
    ];
    for (x, y, fill, label) in quads {
        let _ = writeln!(
            out,
            r##"<rect x="{x}" y="{y}" width="{half}" height="{half}" fill="{fill}" stroke="#999"/>"##
        );
        let _ = writeln!(
            out,
            r##"<text x="{:.0}" y="{:.0}" fill="#555" font-style="italic">{label}</text>"##,
            x + 8.0,
            y + 18.0
        );
    }
    let _ = writeln!(
        out,
        r##"<rect x="{left}" y="{:.0}" width="{half}" height="{half}" fill="none" stroke="#a40000" stroke-width="3"/>"##,
        top + half
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.0}" y="{:.0}" text-anchor="middle">{} →</text>"#,
        left + half,
        top + size + 32.0,
        capitalised(w.maturity)
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate(24 {:.0}) rotate(-90)" text-anchor="middle">Performance →</text>"#,
        top + half
    );
    for (v, label) in [(0.0, "0"), (0.5, w.half), (1.0, "1")] {
        let _ = writeln!(
            out,
            r##"<text x="{:.0}" y="{:.0}" text-anchor="middle" fill="#555">{label}</text>"##,
            left + v * size,
            top + size + 16.0
        );
        let _ = writeln!(
            out,
            r##"<text x="{:.0}" y="{:.0}" text-anchor="end" fill="#555">{label}</text>"##,
            left - 6.0,
            top + size - v * size + 4.0
        );
    }
    // Points at the same place are fanned out so each stays readable.
    let mut seen: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    for r in rows {
        let (Some(m), Some(p)) = (r.maturity, r.performance) else {
            continue;
        };
        let k = desks.iter().position(|d| *d == r.desk).unwrap_or(0);
        let colour = COLOURS[k % COLOURS.len()];
        #[allow(clippy::cast_possible_truncation)]
        let n = seen
            .entry(((m * 1000.0) as i64, (p * 1000.0) as i64))
            .or_default();
        #[allow(clippy::cast_precision_loss)]
        let (x, y) = (
            left + m * size - 10.0 * *n as f64,
            top + size - p * size + 15.0 * *n as f64,
        );
        *n += 1;
        let _ = writeln!(
            out,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="6" fill="{colour}"><title>{} · {}: {} {m:.2}, performance {p:.2}</title></circle>"#,
            esc(&r.desk),
            block_name(r.block, language),
            w.maturity
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" fill="{colour}">{}</text>"#,
            x + 9.0,
            y + 4.0,
            block_name(r.block, language)
        );
    }
    let mut y = top + size + 56.0;
    for (k, d) in desks.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let _ = writeln!(
            out,
            r#"<circle cx="{:.0}" cy="{:.0}" r="6" fill="{colour}"/><text x="{:.0}" y="{:.0}">{}</text>"#,
            left + 6.0,
            y - 4.0,
            left + 18.0,
            y,
            esc(d)
        );
        y += 18.0;
    }
    for r in missing {
        let _ = writeln!(
            out,
            r##"<text x="{left}" y="{y:.0}" fill="#555">{} · {}: {}</text>"##,
            esc(&r.desk),
            block_name(r.block, language),
            w.not_enough
        );
        y += 18.0;
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(axis(7.3), (8.0, 2.0));
        assert_eq!(axis(43.0), (50.0, 10.0));
        assert_eq!(axis(0.0), (1.0, 0.25));
        assert_eq!(axis(180.0), (200.0, 50.0));
        assert_eq!(axis(555.0), (600.0, 200.0));
        assert_eq!(axis(1.0), (1.0, 0.2));
    }

    #[test]
    fn tick_labels_keep_the_digits_that_matter() {
        assert_eq!(fmt_num(40.0), "40");
        assert_eq!(fmt_num(2.5), "2.5");
        assert_eq!(fmt_num(0.25), "0.25");
        assert_eq!(fmt_num(0.0004), "0.0004");
    }

    #[test]
    fn labels_are_escaped() {
        let s = Stats::of(vec![1.0, 2.0, 3.0]).unwrap_or_else(|| unreachable!());
        let svg = box_plot("<b>", "days", &[("a&b".into(), s)]);
        assert!(svg.contains("&lt;b&gt;") && svg.contains("a&amp;b") && !svg.contains("<b>"));
        let svg = stacked_bars("t", "days", &["w<"], &[("x\"".into(), vec![1.0, 2.0])]);
        assert!(svg.contains("w&lt;") && svg.contains("x&quot;"));
    }
}
