//! Third stage: soundness of the whole flow graph, with petgraph.
//!
//! The checks here are what BPMN tools leave to run time: a step nobody can reach, a step from
//! which no end can be reached, a loop with no way out, a jump that leaves a parallel branch
//! before the join (the join would wait forever) or enters one from outside (a token the join
//! never expected), and a gate that reads data a step may not have produced yet.
//!
//! The graph has one node per step and one extra node per parallel block, its join. Branch
//! ends flow into the join, and the join into whatever follows the block.

use petgraph::Direction;
use petgraph::algo::{dominators, tarjan_scc};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{Dfs, Reversed};

use crate::diagnostic::{Code, Diagnostic, Diagnostics};
use crate::lower::Draft;
use crate::model::{Exit, Flow, Scope, StepIdx, StepKind, Target};
use crate::resolve::Read;

struct Graph {
    g: DiGraph<(), ()>,
    steps: usize,
    /// Join node of each parallel step, by step index.
    join: Vec<Option<NodeIndex>>,
}

fn node(i: StepIdx) -> NodeIndex {
    NodeIndex::new(i)
}

impl Graph {
    /// The flow graph. With `serial`, parallel branches are chained one after the other
    /// instead of side by side: the graph whose dominators say what has surely run (every
    /// branch has finished after the join), used for G0103.
    fn build(d: &Draft, flow: &Flow, serial: bool) -> Graph {
        let n = d.steps.len();
        let mut g = DiGraph::with_capacity(n * 2, n * 3);
        for _ in 0..n {
            g.add_node(());
        }
        let mut join = vec![None; n];
        for (i, s) in d.steps.iter().enumerate() {
            if matches!(s.kind, StepKind::Parallel(_)) {
                join[i] = Some(g.add_node(()));
            }
        }
        let first_of_branch = |p: StepIdx, b: usize| -> Option<StepIdx> {
            match &d.steps[p].kind {
                StepKind::Parallel(par) => {
                    par.branches.get(b).and_then(|br| br.steps.first().copied())
                }
                _ => None,
            }
        };
        for (i, edges) in flow.edges.iter().enumerate() {
            for e in edges {
                let from = if matches!(e.exit, Exit::Next) && join[i].is_some() {
                    join[i].unwrap_or(node(i))
                } else {
                    node(i)
                };
                if serial
                    && let Exit::Branch(b) = e.exit
                    && b > 0
                {
                    continue;
                }
                let to = match e.to {
                    Target::Step(t) => node(t),
                    Target::Join(p) => {
                        let branch = d.steps[i].scope.map_or(0, |s| s.branch);
                        match (serial, first_of_branch(p, branch + 1)) {
                            (true, Some(next_branch)) => node(next_branch),
                            _ => join[p].unwrap_or(node(p)),
                        }
                    }
                };
                g.add_edge(from, to, ());
            }
        }
        Graph { g, steps: n, join }
    }

    fn step_of(&self, n: NodeIndex) -> Option<StepIdx> {
        (n.index() < self.steps).then_some(n.index())
    }

    fn parallel_of_join(&self, n: NodeIndex) -> Option<StepIdx> {
        self.join.iter().position(|j| *j == Some(n))
    }
}

pub(crate) fn analyse(d: &Draft, flow: &Flow, reads: &[Read], diags: &mut Diagnostics) {
    if d.steps.is_empty() || !matches!(d.steps[0].kind, StepKind::Start(_)) {
        return;
    }
    check_jumps(d, flow, diags);
    let graph = Graph::build(d, flow, false);
    let g = &graph.g;
    let id_span = |i: StepIdx| d.links[i].id.as_ref().map_or(d.steps[i].span, |n| n.span);

    // Reachability from the start.
    let mut reachable = vec![false; g.node_count()];
    let mut dfs = Dfs::new(g, node(0));
    while let Some(n) = dfs.next(g) {
        reachable[n.index()] = true;
    }
    // Co-reachability: which nodes can reach an end.
    let mut can_end = vec![false; g.node_count()];
    let rev = Reversed(g);
    for (i, s) in d.steps.iter().enumerate() {
        if matches!(s.kind, StepKind::End(_)) {
            let mut dfs = Dfs::new(rev, node(i));
            while let Some(n) = dfs.next(rev) {
                can_end[n.index()] = true;
            }
        }
    }

    let sccs = tarjan_scc(g);
    let mut scc_of = vec![0usize; g.node_count()];
    for (k, scc) in sccs.iter().enumerate() {
        for n in scc {
            scc_of[n.index()] = k;
        }
    }
    let first_step = |scc: &[NodeIndex]| -> Option<StepIdx> {
        scc.iter()
            .filter_map(|&n| graph.step_of(n).or_else(|| graph.parallel_of_join(n)))
            .min()
    };

    // Unreachable: report the entry of each unreachable region only.
    for (k, scc) in sccs.iter().enumerate() {
        if reachable[scc[0].index()] {
            continue;
        }
        let entered_from_dead = scc.iter().any(|&n| {
            g.neighbors_directed(n, Direction::Incoming)
                .any(|p| scc_of[p.index()] != k && !reachable[p.index()])
        });
        // A join is unreachable exactly when its block is; the block reports it.
        let only_join = scc.iter().all(|&n| graph.step_of(n).is_none());
        if entered_from_dead || only_join {
            continue;
        }
        if let Some(i) = first_step(scc) {
            diags.push(
                Diagnostic::new(
                    Code::Unreachable,
                    id_span(i),
                    format!("step `{}` can never be reached", d.steps[i].id),
                )
                .label("no path from the start leads here")
                .help("jump to it from a gate or an outcome (goto=\"...\"), or remove it"),
            );
        }
    }

    // Loops with no way out: a closed group of steps, reachable, with no end in it.
    let mut in_closed_loop = vec![false; g.node_count()];
    for (k, scc) in sccs.iter().enumerate() {
        let n0 = scc[0];
        if !reachable[n0.index()] || can_end[n0.index()] {
            continue;
        }
        let closed = scc
            .iter()
            .all(|&n| g.neighbors(n).all(|s| scc_of[s.index()] == k));
        let is_loop = scc.len() > 1 || g.neighbors(n0).any(|s| s == n0);
        if closed && is_loop {
            for &n in scc {
                in_closed_loop[n.index()] = true;
            }
            if let Some(i) = first_step(scc) {
                let mut diag = Diagnostic::new(
                    Code::EndlessLoop,
                    id_span(i),
                    format!("the loop through `{}` has no way out", d.steps[i].id),
                )
                .label("once here, the request can never end")
                .help("give one of the loop's gates or outcomes a path that leaves the loop");
                let mut members: Vec<StepIdx> =
                    scc.iter().filter_map(|&n| graph.step_of(n)).collect();
                members.sort_unstable();
                for &m in members.iter().filter(|&&m| m != i).take(4) {
                    diag = diag.related(id_span(m), "part of the loop");
                }
                diags.push(diag);
            }
        }
    }
    // Other steps that cannot end: report where the path turns into a dead end.
    for i in 0..d.steps.len() {
        let n = node(i);
        if !reachable[i] || can_end[i] || in_closed_loop[i] {
            continue;
        }
        let choice_point = i == 0
            || g.neighbors_directed(n, Direction::Incoming)
                .any(|p| can_end[p.index()]);
        if choice_point {
            diags.push(
                Diagnostic::new(
                    Code::NoEnd,
                    id_span(i),
                    format!("no end can be reached from `{}`", d.steps[i].id),
                )
                .label("every path from here is stuck")
                .help("every path must reach an `end`: check the loops and jumps that follow"),
            );
        }
    }

    check_reads(d, flow, reads, &reachable, diags);
}

/// The scopes around a step, innermost first.
fn scopes(d: &Draft, mut i: StepIdx) -> Vec<Scope> {
    let mut out = Vec::new();
    while let Some(s) = d.steps[i].scope {
        out.push(s);
        i = s.parallel;
    }
    out
}

fn check_jumps(d: &Draft, flow: &Flow, diags: &mut Diagnostics) {
    for (i, edges) in flow.edges.iter().enumerate() {
        for e in edges.iter().filter(|e| e.jump) {
            let Target::Step(t) = e.to else { continue };
            let from = d.steps[i].scope;
            let to = d.steps[t].scope;
            if from == to {
                continue;
            }
            let from_chain = scopes(d, i);
            let leaving = to.is_none_or(|t| from_chain.contains(&t));
            let (code, message, label, help) = if leaving {
                let s = from.map_or(i, |s| s.parallel);
                (
                    Code::LeavesBranch,
                    format!(
                        "`{}` jumps out of a branch of `{}` before the branches are joined",
                        d.steps[i].id, d.steps[s].id
                    ),
                    "leaves the branch",
                    "a branch must run to its end so that the parallel block can finish; \
                     decide after the block, with a gate that reads the branch's outcome",
                )
            } else {
                (
                    Code::EntersBranch,
                    format!(
                        "`{}` jumps into the middle of a parallel branch, to `{}`",
                        d.steps[i].id, d.steps[t].id
                    ),
                    "enters a branch from outside",
                    "the join would get a token it never sent out: jump to the parallel block \
                     itself, or move the target out of the branch",
                )
            };
            let goto_span = goto_span(d, i, e.exit).unwrap_or(d.steps[i].span);
            diags.push(
                Diagnostic::new(code, goto_span, message)
                    .label(label)
                    .related(
                        d.links[t].id.as_ref().map_or(d.steps[t].span, |n| n.span),
                        "the target",
                    )
                    .help(help),
            );
        }
    }
}

/// Where the jump for one exit of a step is written.
fn goto_span(d: &Draft, i: StepIdx, exit: Exit) -> Option<crate::diagnostic::Span> {
    let l = &d.links[i];
    let name = match exit {
        Exit::Outcome(o) => l
            .outcome_gotos
            .get(o)
            .cloned()
            .flatten()
            .or_else(|| l.goto.clone()),
        Exit::When(w) => l.when_gotos.get(w).cloned().flatten(),
        Exit::Otherwise => l.otherwise.clone(),
        Exit::Timeout => l.on_timeout.clone(),
        Exit::Next | Exit::Branch(_) => l.goto.clone(),
    };
    name.map(|n| n.span)
}

/// G0103: a gate reads a step's data on a path where that step may not have run.
fn check_reads(
    d: &Draft,
    flow: &Flow,
    reads: &[Read],
    reachable: &[bool],
    diags: &mut Diagnostics,
) {
    let serial = Graph::build(d, flow, true);
    let dom = dominators::simple_fast(&serial.g, node(0));
    for r in reads {
        let Some(reader) = r.reader else { continue };
        if r.guarded || r.count || !reachable[reader] {
            continue;
        }
        let dominates = dom
            .dominators(node(reader))
            .is_some_and(|mut it| it.any(|n| n == node(r.step)));
        let a = scopes(d, r.step);
        let b = scopes(d, reader);
        let siblings = a.iter().any(|x| {
            b.iter()
                .any(|y| x.parallel == y.parallel && x.branch != y.branch)
        });
        if !dominates || siblings {
            diags.push(
                Diagnostic::new(
                    Code::MaybeUnset,
                    r.span,
                    format!(
                        "`{}` may not have run when gate `{}` decides",
                        d.steps[r.step].id, d.steps[reader].id
                    ),
                )
                .label("may be unset here")
                .help("guard the read with has(...), or make sure every path to the gate passes through that step"),
            );
        } else if r.optional_field {
            diags.push(
                Diagnostic::new(
                    Code::MaybeUnset,
                    r.span,
                    "this field is optional, so it may be empty when the gate decides",
                )
                .label("optional field")
                .help("guard the read with has(...), or make the field required=#true"),
            );
        }
    }
}
