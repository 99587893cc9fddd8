//! Charts as standalone SVG, for reports a person reads at a glance: box plots of a
//! duration per desk model, and stacked bars (time per step, waiting against working).
//! Server-rendered, no script, readable in a browser, a mail client or an HTML report file.
//! Every text is escaped.

use std::fmt::Write as _;

use crate::kpi::Stats;

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
pub fn task_times(
    title: &str,
    unit: &str,
    legend: [&str; 2],
    steps: &[&crate::kpi::StepRow],
) -> String {
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
