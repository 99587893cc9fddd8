//! What goes into the core ([`Command`]) and what comes out: [`Effect`]s for the shell to
//! apply, and history [`Event`]s to append.

use guichet_definitions::model::EndResult;
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::core::state::{Fields, Seq, Task, Timer, TimerKind};

/// Who did something, as recorded in history.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type", content = "id")]
pub enum Actor {
    /// The engine itself (timers, automatic steps).
    System,
    /// A staff member, by email address.
    User(String),
    /// The project sponsor who submitted the request.
    Requester,
    /// An external provider, by provider id.
    Provider(String),
}

/// Something that happens to a running instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "command")]
pub enum Command {
    /// A member of the task's role takes it.
    Claim { task: Seq, user: String },
    /// The assignee gives it back to the role.
    Release { task: Seq, user: String },
    /// Hand the task to a person or another role.
    Delegate {
        task: Seq,
        by: String,
        to: Recipient,
    },
    /// The task is done, with an outcome (when the step declares outcomes) and form data.
    Complete {
        task: Seq,
        user: String,
        outcome: Option<String>,
        fields: Fields,
        /// Why, in the person's words: shown to staff in the timeline (required by an outcome
        /// declared with `comment=#true`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    /// A provider's callback for the call step where `token` waits.
    Callback {
        token: Seq,
        provider: String,
        outcome: Option<String>,
        fields: Fields,
    },
    /// A named external event for this request (e.g. the sponsor's answer).
    Event {
        name: String,
        fields: Fields,
        actor: Actor,
        /// The sender's key for this event: the same key again is the same event, taken
        /// once (a retry after a lost answer changes nothing).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    /// A timer is due.
    FireTimer { timer: Seq },
    /// The whole request is withdrawn or cancelled: open tasks and timers are cancelled.
    Cancel { reason: String, actor: Actor },
}

/// Who an email goes to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type", content = "id")]
pub enum Recipient {
    /// Every member of a role (static members, or the address taken from case data).
    Role(String),
    /// One person, by email address.
    Person(String),
}

/// What the shell must do, in the same transaction as saving the new state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "effect")]
pub enum Effect {
    /// A task was created or changed: write its row (the inbox reads it).
    TaskSaved(Task),
    /// A task left the open states.
    TaskClosed {
        task: Seq,
        completed: bool,
    },
    TimerScheduled(Timer),
    TimerCancelled {
        timer: Seq,
    },
    /// An email to queue in the outbox.
    Email {
        template: String,
        to: Recipient,
        task: Option<Seq>,
    },
    /// A webhook to queue in the outbox: hand the step to a provider.
    CallProvider {
        provider: String,
        step: String,
        token: Seq,
    },
    /// The instance reached a final state.
    Finished,
}

/// An entry of the history: the single source of the audit trail, the indicators and the
/// exports. Steps are named by id, so history stays readable across definition versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at: Timestamp,
    pub actor: Actor,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "event")]
pub enum EventKind {
    InstanceStarted,
    StepEntered {
        step: String,
    },
    StepCompleted {
        step: String,
        outcome: Option<String>,
    },
    TaskCreated {
        task: Seq,
        step: String,
        role: String,
    },
    TaskClaimed {
        task: Seq,
        user: String,
    },
    TaskReleased {
        task: Seq,
        user: String,
    },
    TaskDelegated {
        task: Seq,
        to: Recipient,
    },
    TaskEscalated {
        task: Seq,
        role: String,
    },
    TaskCompleted {
        task: Seq,
        step: String,
        outcome: Option<String>,
        /// Left out when there is none (histories written before comments read the same).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    TaskCancelled {
        task: Seq,
    },
    DeadlinePassed {
        task: Seq,
        step: String,
    },
    ReminderSent {
        task: Seq,
    },
    GateTaken {
        step: String,
        branch: String,
    },
    /// A condition could not be evaluated (e.g. it read a value never set): it counts as
    /// false, and this records why.
    ConditionFailed {
        step: String,
        condition: usize,
        error: String,
    },
    TimerFired {
        timer: Seq,
        kind: TimerKind,
    },
    NotificationQueued {
        template: String,
        to: Recipient,
    },
    ProviderCalled {
        step: String,
        provider: String,
    },
    CallbackReceived {
        step: String,
        provider: String,
        outcome: Option<String>,
    },
    EventReceived {
        name: String,
        step: String,
    },
    EventBuffered {
        name: String,
    },
    TimedOut {
        step: String,
    },
    /// What was open at a step was withdrawn without finishing (its parallel block completed
    /// early): its task cancelled, its call's answer or its wait's event no longer taken.
    StepWithdrawn {
        step: String,
    },
    InstanceEnded {
        result: EndResult,
    },
    InstanceCancelled {
        reason: String,
    },
    /// A document came with a step's data (intake, task, answer, callback): its SHA-256 is
    /// in the hash chain, so the stored file can be proved to be the one received.
    DocumentReceived {
        step: String,
        field: String,
        sha256: String,
        name: String,
        size: u64,
        media_type: String,
    },
}

/// Everything one command produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transition {
    pub effects: Vec<Effect>,
    pub events: Vec<Event>,
}
