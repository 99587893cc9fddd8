//! The indicators: what a request's history says once it ends (facts), how facts add up
//! (tallies, rolled up by day and month), the white paper's KPIs and their statistics, the
//! charts, and the exports of the history. No `Engine` here: the runtime serves them
//! ([`crate::runtime`]'s `indicators`, `export`).

pub mod charts;
pub mod export;
pub mod facts;
pub mod kpi;
pub mod rollup;
pub mod stats;
pub mod tally;
