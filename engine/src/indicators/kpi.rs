//! Indicators over ended requests: the desk's declared KPIs and the per-step timings,
//! grouped by desk model and optionally by revision or period, filtered by intake answers.
//! Computed from the facts each request leaves when it ends ([`crate::indicators::facts`]); the exact
//! definitions are in `docs/kpi.md`.

use std::collections::BTreeMap;

use guichet_definitions::model::{BuildingBlock, Process};
use serde::Serialize;

use crate::clock::Timestamp;

pub use crate::indicators::stats::Stats;

/// How to split the requests.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compare {
    /// One group per desk model (always the case: models are compared side by side).
    #[default]
    Model,
    /// One group per deployed revision of each model.
    Version,
    /// One group per calendar month of the request's end (UTC).
    Month,
    /// One group per quarter of the request's end (UTC).
    Quarter,
}

/// Which requests count.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Desk names; empty for all.
    pub desks: Vec<String>,
    /// Requests that ended at or after this instant.
    pub from: Option<Timestamp>,
    /// Requests that ended before this instant.
    pub to: Option<Timestamp>,
    pub compare: Compare,
    /// Intake answers the requests must have (choice and yes-no fields), e.g. `cadre=autre`.
    pub filters: Vec<(String, String)>,
}

/// One indicator for one group.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KpiRow {
    pub desk: String,
    /// The revision, month or quarter; empty when comparing models only.
    pub group: String,
    pub kpi: String,
    pub title: Option<String>,
    pub kind: &'static str,
    /// The white paper's building block: general, catalogue, uses, technical, regulatory or
    /// valorisation.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub block: BuildingBlock,
    /// Ended requests in the group.
    pub requests: usize,
    /// The headline value: mean days for durations, total for counts and sums, the quotient
    /// for ratios, the mean for means. `None` when no request has the data.
    pub value: Option<f64>,
    pub unit: &'static str,
    /// Distribution (durations in days, means in the field's unit).
    pub stats: Option<Stats>,
    pub target: Option<f64>,
    pub lower_is_better: bool,
    pub meets_target: Option<bool>,
}

/// The lead time of the requests of one group.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeadTime {
    pub desk: String,
    pub group: String,
    /// In days.
    pub stats: Stats,
}

/// Timings of one step for one group.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRow {
    pub desk: String,
    pub group: String,
    pub step: String,
    pub title: String,
    pub kind: String,
    pub visits: usize,
    /// Requests that visited it.
    pub requests: usize,
    /// Visits beyond the first (loops, revisions).
    pub loops: usize,
    /// Entered to left, in days.
    pub total: Option<Stats>,
    /// Tasks: created to first claimed, in days.
    pub waiting: Option<Stats>,
    /// Tasks: first claimed to completed, in days.
    pub working: Option<Stats>,
    /// Tasks with a deadline: the share completed after it.
    pub breach_rate: Option<f64>,
    /// Time in this step over the lead time of the requests of the group (parallel steps
    /// overlap, so shares can add up to more than 1).
    pub share_of_lead_time: f64,
}

/// The indicators of a query, from one tally: the declared ones, the lead time, and the
/// per-step timings.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Indicators {
    pub indicators: Vec<KpiRow>,
    pub lead_times: Vec<LeadTime>,
    pub steps: Vec<StepRow>,
}

/// The maturity x performance position of one building block of a desk.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatrixRow {
    pub desk: String,
    pub block: BuildingBlock,
    /// Share of the block's maturity facts that are present.
    pub maturity: Option<f64>,
    /// Share of the block's indicators with a target that meet it.
    pub performance: Option<f64>,
    pub quadrant: &'static str,
}

/// The latest compiled definition of each deployed desk, by name.
pub type Desks = BTreeMap<String, std::sync::Arc<Process>>;
