//! The state of one request (instance) as the core sees it: where its tokens stand, the data
//! its steps collected, its open tasks and its scheduled timers. It is plain data, serialised
//! whole by the shell; nothing here does I/O.

use std::collections::{BTreeMap, BTreeSet};

use guichet_definitions::model::{EndResult, Language, StepIdx};
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

/// Sequence number of a token, task or timer, unique within its instance.
pub type Seq = u32;

/// Field values, by field id.
pub type Fields = BTreeMap<String, serde_json::Value>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub status: InstanceStatus,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    /// Active tokens: where the request currently stands (one per running parallel branch).
    pub tokens: BTreeMap<Seq, Token>,
    /// For each parallel block being run, the branches that have reached its join.
    pub joins: BTreeMap<StepIdx, BTreeSet<usize>>,
    /// What each step collected, by step id (the last completion wins; `count` counts them).
    pub data: BTreeMap<String, StepData>,
    /// Open tasks. A completed or cancelled task leaves the state (the history keeps it).
    pub tasks: BTreeMap<Seq, Task>,
    /// Scheduled timers. A fired or cancelled timer leaves the state.
    pub timers: BTreeMap<Seq, Timer>,
    /// External events received before a step waited for them, for the waits that keep
    /// early events (`keep-early`), until they are taken or too old.
    pub buffered: Vec<ReceivedEvent>,
    /// The keys of the external events taken (answered a wait or kept): an event sent again
    /// with one of them is the same event, and changes nothing.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub event_keys: BTreeSet<String>,
    pub next_seq: Seq,
    /// The language the sponsor wrote the request in (the page's), in which the desk writes
    /// to them; `None` for requests started without one (the API, the CLI, older requests):
    /// the desk's language then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<Language>,
}

impl Instance {
    pub(crate) fn new(now: Timestamp) -> Self {
        Instance {
            status: InstanceStatus::Running,
            started_at: now,
            ended_at: None,
            tokens: BTreeMap::new(),
            joins: BTreeMap::new(),
            data: BTreeMap::new(),
            tasks: BTreeMap::new(),
            timers: BTreeMap::new(),
            buffered: Vec::new(),
            event_keys: BTreeSet::new(),
            next_seq: 1,
            language: None,
        }
    }

    pub(crate) fn seq(&mut self) -> Seq {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    /// When the earliest of its timers falls due (none scheduled: `None`); the engine keeps
    /// it in the request's row to find the timers due.
    pub fn next_timer_at(&self) -> Option<Timestamp> {
        self.timers.values().map(|t| t.due_at).min()
    }

    /// Its timers due at `now`, earliest first (by due time, then by number).
    pub fn timers_due(&self, now: Timestamp) -> Vec<Seq> {
        let mut due: Vec<&Timer> = self.timers.values().filter(|t| t.due_at <= now).collect();
        due.sort_by_key(|t| (t.due_at, t.seq));
        due.into_iter().map(|t| t.seq).collect()
    }

    pub fn is_running(&self) -> bool {
        self.status == InstanceStatus::Running
    }
}

/// The lifecycle of an instance (see [`crate::core::lifecycle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "status", content = "result")]
pub enum InstanceStatus {
    Running,
    Ended(EndResult),
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// The step the token is at (or last left, while the work loop moves it).
    pub step: StepIdx,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepData {
    pub count: u32,
    pub outcome: Option<String>,
    pub fields: Fields,
    /// The comment of the last completion, if its author wrote one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub seq: Seq,
    pub token: Seq,
    pub step: StepIdx,
    /// The role whose members may do it (changes on escalation or delegation to a role).
    pub role: String,
    /// The member who claimed it, or to whom it was delegated.
    pub assignee: Option<String>,
    pub state: TaskState,
    pub created_at: Timestamp,
    pub due_at: Option<Timestamp>,
    /// Whether the deadline has passed.
    pub overdue: bool,
}

/// The open states of a task; `Completed` and `Cancelled` are terminal and live in history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskState {
    Open,
    Claimed,
    Completed,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    pub seq: Seq,
    pub due_at: Timestamp,
    pub kind: TimerKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum TimerKind {
    /// A task's deadline passes.
    Deadline { task: Seq },
    /// Remind the task's assignee (or role) before the deadline.
    Reminder { task: Seq },
    /// Hand the task to the escalation role.
    Escalation { task: Seq },
    /// A call or wait times out.
    Timeout { token: Seq },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceivedEvent {
    pub name: String,
    pub fields: Fields,
    pub at: Timestamp,
}
