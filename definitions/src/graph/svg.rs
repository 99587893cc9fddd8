//! A standalone SVG drawing of a process, laid out by its structure: the main sequence runs
//! down the page, parallel branches stand side by side between a split bar and a join bar,
//! and jumps (outcomes, gate branches, timeouts, loops) are routed in lanes on the right, each
//! labelled. Tasks are coloured by role, with a legend.

use std::collections::HashMap;
use std::fmt::Write;

use super::{clip, exit_label, step_detail};
use crate::model::{Exit, Language, Process, StepIdx, StepKind, Target};

const BOX_W: f64 = 230.0;
const BOX_H: f64 = 46.0;
const V_GAP: f64 = 30.0;
const H_GAP: f64 = 24.0;
const BAR_H: f64 = 8.0;
const LANE_GAP: f64 = 14.0;
const MARGIN: f64 = 20.0;

const PALETTE: &[&str] = &[
    "#cfe2f3", "#d9ead3", "#fff2cc", "#f4cccc", "#d9d2e9", "#fce5cd", "#d0e0e3", "#ead1dc",
];

#[derive(Debug, Clone, Copy)]
struct Rect {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

impl Rect {
    fn cx(&self) -> f64 {
        self.x + self.w / 2.0
    }
    fn bottom(&self) -> f64 {
        self.y + self.h
    }
    fn right(&self) -> f64 {
        self.x + self.w
    }
    fn cy(&self) -> f64 {
        self.y + self.h / 2.0
    }
}

struct Layout {
    boxes: HashMap<StepIdx, Rect>,
    /// The join bar of each parallel step.
    joins: HashMap<StepIdx, Rect>,
}

/// Width of a block of steps laid out as a column.
fn block_width(p: &Process, steps: &[StepIdx]) -> f64 {
    steps
        .iter()
        .map(|&s| step_width(p, s))
        .fold(BOX_W, f64::max)
}

fn step_width(p: &Process, s: StepIdx) -> f64 {
    match &p.steps[s].kind {
        StepKind::Parallel(par) => {
            let inner: f64 = par
                .branches
                .iter()
                .map(|b| block_width(p, &b.steps))
                .sum::<f64>()
                + H_GAP * (par.branches.len().saturating_sub(1)) as f64;
            inner.max(BOX_W)
        }
        _ => BOX_W,
    }
}

/// Lays out a column of steps centred on `cx` from `y`; returns the y below it.
fn place_block(p: &Process, steps: &[StepIdx], cx: f64, mut y: f64, l: &mut Layout) -> f64 {
    for &s in steps {
        y = place_step(p, s, cx, y, l) + V_GAP;
    }
    y - V_GAP
}

fn place_step(p: &Process, s: StepIdx, cx: f64, y: f64, l: &mut Layout) -> f64 {
    match &p.steps[s].kind {
        StepKind::Parallel(par) => {
            let w = step_width(p, s);
            l.boxes.insert(
                s,
                Rect {
                    x: cx - w / 2.0,
                    y,
                    w,
                    h: BAR_H,
                },
            );
            let top = y + BAR_H + V_GAP;
            let mut x = cx - w / 2.0;
            let mut bottom = top;
            let total: f64 = par
                .branches
                .iter()
                .map(|b| block_width(p, &b.steps))
                .sum::<f64>()
                + H_GAP * (par.branches.len().saturating_sub(1)) as f64;
            x += (w - total) / 2.0;
            for b in &par.branches {
                let bw = block_width(p, &b.steps);
                bottom = bottom.max(place_block(p, &b.steps, x + bw / 2.0, top, l));
                x += bw + H_GAP;
            }
            let jy = bottom + V_GAP;
            l.joins.insert(
                s,
                Rect {
                    x: cx - w / 2.0,
                    y: jy,
                    w,
                    h: BAR_H,
                },
            );
            jy + BAR_H
        }
        _ => {
            l.boxes.insert(
                s,
                Rect {
                    x: cx - BOX_W / 2.0,
                    y,
                    w: BOX_W,
                    h: BOX_H,
                },
            );
            y + BOX_H
        }
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders the process as an SVG document.
pub fn svg(p: &Process) -> String {
    svg_marked(p, &[], p.language)
}

/// The same drawing with some steps outlined in red: where a request stands now.
/// Its own words (not the desk's texts) are in `language`.
pub fn svg_marked(p: &Process, marked: &[StepIdx], language: Language) -> String {
    let mut l = Layout {
        boxes: HashMap::new(),
        joins: HashMap::new(),
    };
    let width = block_width(p, &p.body);
    let top = MARGIN + 40.0;
    let bottom = place_block(p, &p.body, MARGIN + width / 2.0, top, &mut l);

    let mut colours: HashMap<&str, &str> = HashMap::new();
    for (k, r) in p.roles.iter().enumerate() {
        colours.insert(r.id.as_str(), PALETTE[k % PALETTE.len()]);
    }

    // Which edges are drawn straight (the step right below, in the same column) and which
    // are jumps routed in a lane.
    let mut straight = Vec::new();
    let mut jumps = Vec::new();
    for (i, edges) in p.flow.edges.iter().enumerate() {
        for e in edges {
            let from = match (&p.steps[i].kind, e.exit) {
                (StepKind::Parallel(_), Exit::Next) => l.joins[&i],
                _ => l.boxes[&i],
            };
            let to = match e.to {
                Target::Step(t) => l.boxes[&t],
                Target::Join(par) => l.joins[&par],
            };
            let label = exit_label(p, i, e.exit, language);
            let below = to.y > from.bottom() && !e.jump;
            let list = if below || matches!(e.exit, Exit::Branch(_)) {
                &mut straight
            } else {
                &mut jumps
            };
            // Several ways out to the same place are drawn once, their labels joined.
            let same = |r: &Rect, q: &Rect| r.x == q.x && r.y == q.y;
            match list
                .iter_mut()
                .find(|(f, t, _): &&mut (Rect, Rect, String)| same(f, &from) && same(t, &to))
            {
                Some((_, _, l)) if !label.is_empty() => {
                    if !l.is_empty() {
                        l.push_str(" / ");
                    }
                    l.push_str(&label);
                }
                Some(_) => {}
                None => list.push((from, to, label)),
            }
        }
    }
    let lanes_x = MARGIN + width + 30.0;
    let total_w = lanes_x + LANE_GAP * jumps.len() as f64 + 200.0;
    let legend_h = 20.0 * (p.roles.len() as f64 + 1.0);
    let total_h = bottom + MARGIN + legend_h + 20.0;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{total_w:.0}" height="{total_h:.0}" viewBox="0 0 {total_w:.0} {total_h:.0}" font-family="sans-serif" font-size="12" role="img" aria-label="{}">"#,
        esc(&p.title)
    );
    out.push_str(r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>"##);
    out.push('\n');
    let _ = writeln!(
        out,
        r#"<text x="{MARGIN}" y="{:.0}" font-size="16" font-weight="bold">{} (v{})</text>"#,
        MARGIN + 14.0,
        esc(&p.title),
        p.version
    );

    for (from, to, label) in &straight {
        let (x1, y1) = (
            from.cx().clamp(to.x + 10.0, to.right() - 10.0),
            from.bottom(),
        );
        let x2 = x1.clamp(to.x, to.right());
        let _ = writeln!(
            out,
            r##"<path d="M{x1:.1},{y1:.1} L{x2:.1},{:.1}" stroke="#555" fill="none" marker-end="url(#arrow)"/>"##,
            to.y
        );
        if !label.is_empty() {
            let _ = writeln!(
                out,
                r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="#333">{}</text>"##,
                x1 + 4.0,
                y1 + 14.0,
                esc(&clip(label, 30))
            );
        }
    }
    let mut labels_at: HashMap<(i64, i64), usize> = HashMap::new();
    for (k, (from, to, label)) in jumps.iter().enumerate() {
        let lane = lanes_x + LANE_GAP * k as f64;
        // Stack the labels of several jumps leaving the same step.
        let key = (from.x as i64, from.y as i64);
        let nth = *labels_at.entry(key).and_modify(|n| *n += 1).or_insert(0);
        let (y1, y2) = (from.cy(), to.cy());
        let _ = writeln!(
            out,
            r##"<path d="M{:.1},{y1:.1} L{lane:.1},{y1:.1} L{lane:.1},{y2:.1} L{:.1},{y2:.1}" stroke="#888" stroke-dasharray="5,3" fill="none" marker-end="url(#arrow)"/>"##,
            from.right(),
            to.right()
        );
        if !label.is_empty() {
            let _ = writeln!(
                out,
                r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="#333">{}</text>"##,
                from.right() + 4.0,
                y1 - 4.0 - 11.0 * nth as f64,
                esc(&clip(label, 36))
            );
        }
    }

    for (i, s) in p.steps.iter().enumerate() {
        let r = l.boxes[&i];
        let title = esc(&clip(s.display_name(), 34));
        let detail = esc(&clip(&step_detail(p, i, language), 38));
        match &s.kind {
            StepKind::Parallel(_) => {
                let j = l.joins[&i];
                for bar in [r, j] {
                    let _ = writeln!(
                        out,
                        r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{BAR_H}" fill="#444"/>"##,
                        bar.x, bar.y, bar.w
                    );
                }
                let _ = writeln!(
                    out,
                    r##"<text x="{:.1}" y="{:.1}" font-size="11" font-style="italic">{title} (en parallèle)</text>"##,
                    r.x,
                    r.y - 4.0
                );
                continue;
            }
            StepKind::Gate(_) => {
                let (cx, cy) = (r.cx(), r.cy());
                let _ = writeln!(
                    out,
                    r##"<polygon points="{:.1},{:.1} {:.1},{cy:.1} {:.1},{:.1} {:.1},{cy:.1}" fill="#fff" stroke="#333"><title>{}</title></polygon>"##,
                    cx,
                    r.y - 6.0,
                    cx + 95.0,
                    cx,
                    r.bottom() + 6.0,
                    cx - 95.0,
                    esc(&s.id)
                );
                let _ = writeln!(
                    out,
                    r#"<text x="{cx:.1}" y="{:.1}" text-anchor="middle">{title}</text>"#,
                    cy + 4.0
                );
                continue;
            }
            _ => {}
        }
        let (fill, stroke, rx, dash) = match &s.kind {
            StepKind::Start(_) => ("#dff0d8", "#3c763d", 23.0, ""),
            StepKind::End(e) => (
                match e.result {
                    crate::model::EndResult::Accepted => "#dff0d8",
                    crate::model::EndResult::Rejected => "#f2dede",
                    crate::model::EndResult::Withdrawn => "#eeeeee",
                },
                "#333",
                23.0,
                "",
            ),
            StepKind::Task(t) => (
                colours.get(t.role.as_str()).copied().unwrap_or("#fff"),
                "#333",
                6.0,
                "",
            ),
            StepKind::Notify(_) => ("#ffffff", "#777", 2.0, r#" stroke-dasharray="4,2""#),
            StepKind::Call(_) => ("#fffbe6", "#8a6d3b", 2.0, ""),
            StepKind::Wait(_) => ("#f5f5f5", "#555", 14.0, ""),
            StepKind::Gate(_) | StepKind::Parallel(_) => unreachable!("drawn above"),
        };
        let (stroke, stroke_w) = if marked.contains(&i) {
            ("#cc0000", 4.0)
        } else if matches!(s.kind, StepKind::End(_) | StepKind::Call(_)) {
            (stroke, 2.5)
        } else {
            (stroke, 1.0)
        };
        let _ = writeln!(
            out,
            r#"<g><title>{}</title><rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="{rx}" fill="{fill}" stroke="{stroke}" stroke-width="{stroke_w}"{dash}/>"#,
            esc(&s.id),
            r.x,
            r.y,
            r.w,
            r.h
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-weight="bold">{title}</text>"#,
            r.cx(),
            r.y + 19.0
        );
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10" fill="#444">{detail}</text></g>"##,
            r.cx(),
            r.y + 35.0
        );
    }

    // Legend: one swatch per role.
    let mut y = bottom + MARGIN + 10.0;
    let _ = writeln!(
        out,
        r#"<text x="{MARGIN}" y="{y:.0}" font-weight="bold">Rôles</text>"#
    );
    for r in &p.roles {
        y += 20.0;
        let _ = writeln!(
            out,
            r##"<rect x="{MARGIN}" y="{:.0}" width="14" height="14" fill="{}" stroke="#333"/><text x="{:.0}" y="{y:.0}">{}</text>"##,
            y - 11.0,
            colours[r.id.as_str()],
            MARGIN + 20.0,
            esc(r.title.as_deref().unwrap_or(&r.id))
        );
    }
    out.push_str("</svg>\n");
    out
}
