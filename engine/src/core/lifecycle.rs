//! The fixed lifecycles of the engine as explicit transition tables: instance, task, timer and
//! outbox message. Code asks the table whether an edge exists; a test walks every
//! (state, action) pair against the table, so an edge cannot appear or vanish unnoticed.

use serde::{Deserialize, Serialize};

use crate::core::state::TaskState;

/// What can happen to a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskAction {
    Claim,
    Release,
    DelegateToPerson,
    DelegateToRole,
    Escalate,
    Complete,
    Cancel,
}

impl TaskAction {
    pub const ALL: [TaskAction; 7] = [
        TaskAction::Claim,
        TaskAction::Release,
        TaskAction::DelegateToPerson,
        TaskAction::DelegateToRole,
        TaskAction::Escalate,
        TaskAction::Complete,
        TaskAction::Cancel,
    ];
}

impl TaskState {
    pub const ALL: [TaskState; 4] = [
        TaskState::Open,
        TaskState::Claimed,
        TaskState::Completed,
        TaskState::Cancelled,
    ];
}

/// Every edge of a task's life. Claiming a task claimed by someone else is a conflict, not an
/// edge; completing an open task claims it implicitly (the completer becomes the assignee).
pub const TASK: &[(TaskState, TaskAction, TaskState)] = {
    use TaskAction as A;
    use TaskState as S;
    &[
        (S::Open, A::Claim, S::Claimed),
        (S::Open, A::DelegateToPerson, S::Claimed),
        (S::Open, A::DelegateToRole, S::Open),
        (S::Open, A::Escalate, S::Open),
        (S::Open, A::Complete, S::Completed),
        (S::Open, A::Cancel, S::Cancelled),
        (S::Claimed, A::Release, S::Open),
        (S::Claimed, A::DelegateToPerson, S::Claimed),
        (S::Claimed, A::DelegateToRole, S::Open),
        (S::Claimed, A::Escalate, S::Open),
        (S::Claimed, A::Complete, S::Completed),
        (S::Claimed, A::Cancel, S::Cancelled),
    ]
};

/// The state a task moves to, if `action` is allowed from `from`.
pub fn task(from: TaskState, action: TaskAction) -> Option<TaskState> {
    TASK.iter()
        .find(|(f, a, _)| *f == from && *a == action)
        .map(|(_, _, to)| *to)
}

/// The lifecycle of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceLife {
    Running,
    Ended,
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceAction {
    /// A command moved it without finishing it.
    Advance,
    /// A token reached an end.
    End,
    /// Withdrawn or cancelled.
    Cancel,
}

pub const INSTANCE: &[(InstanceLife, InstanceAction, InstanceLife)] = &[
    (
        InstanceLife::Running,
        InstanceAction::Advance,
        InstanceLife::Running,
    ),
    (
        InstanceLife::Running,
        InstanceAction::End,
        InstanceLife::Ended,
    ),
    (
        InstanceLife::Running,
        InstanceAction::Cancel,
        InstanceLife::Cancelled,
    ),
];

pub fn instance(from: InstanceLife, action: InstanceAction) -> Option<InstanceLife> {
    INSTANCE
        .iter()
        .find(|(f, a, _)| *f == from && *a == action)
        .map(|(_, _, to)| *to)
}

/// The lifecycle of a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimerLife {
    Scheduled,
    Fired,
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimerAction {
    Fire,
    Cancel,
}

pub const TIMER: &[(TimerLife, TimerAction, TimerLife)] = &[
    (TimerLife::Scheduled, TimerAction::Fire, TimerLife::Fired),
    (
        TimerLife::Scheduled,
        TimerAction::Cancel,
        TimerLife::Cancelled,
    ),
];

pub fn timer(from: TimerLife, action: TimerAction) -> Option<TimerLife> {
    TIMER
        .iter()
        .find(|(f, a, _)| *f == from && *a == action)
        .map(|(_, _, to)| *to)
}

/// The lifecycle of an outbox message (email or webhook), used by the dispatcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutboxLife {
    Pending,
    Sending,
    Sent,
    Dead,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutboxAction {
    /// A dispatcher claims it (with a lease).
    Claim,
    /// The peer accepted it.
    Succeed,
    /// A transient failure: back to pending, to retry after a backoff.
    RetryLater,
    /// A permanent failure, or too many attempts.
    Fail,
    /// The dispatcher's lease ran out (it died): another may claim it.
    LeaseExpired,
    /// An administrator retries a dead letter.
    Retry,
}

pub const OUTBOX: &[(OutboxLife, OutboxAction, OutboxLife)] = &[
    (
        OutboxLife::Pending,
        OutboxAction::Claim,
        OutboxLife::Sending,
    ),
    (OutboxLife::Sending, OutboxAction::Succeed, OutboxLife::Sent),
    (
        OutboxLife::Sending,
        OutboxAction::RetryLater,
        OutboxLife::Pending,
    ),
    (OutboxLife::Sending, OutboxAction::Fail, OutboxLife::Dead),
    (
        OutboxLife::Sending,
        OutboxAction::LeaseExpired,
        OutboxLife::Pending,
    ),
    (OutboxLife::Dead, OutboxAction::Retry, OutboxLife::Pending),
];

pub fn outbox(from: OutboxLife, action: OutboxAction) -> Option<OutboxLife> {
    OUTBOX
        .iter()
        .find(|(f, a, _)| *f == from && *a == action)
        .map(|(_, _, to)| *to)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (state, action) pair, with the expected result written out by hand.
    #[test]
    fn task_table_every_edge() {
        use TaskAction as A;
        use TaskState as S;
        let expected = |s: S, a: A| -> Option<S> {
            match (s, a) {
                (S::Completed | S::Cancelled, _) => None,
                (S::Open, A::Release) => None,
                (S::Claimed, A::Claim) => None,
                (_, A::Claim | A::DelegateToPerson) => Some(S::Claimed),
                (_, A::Release | A::DelegateToRole | A::Escalate) => Some(S::Open),
                (_, A::Complete) => Some(S::Completed),
                (_, A::Cancel) => Some(S::Cancelled),
            }
        };
        for s in TaskState::ALL {
            for a in TaskAction::ALL {
                assert_eq!(task(s, a), expected(s, a), "{s:?} --{a:?}-->");
            }
        }
    }

    #[test]
    fn instance_timer_outbox_tables() {
        use InstanceAction as IA;
        use InstanceLife as I;
        for s in [I::Running, I::Ended, I::Cancelled] {
            for a in [IA::Advance, IA::End, IA::Cancel] {
                let expected = match (s, a) {
                    (I::Running, IA::Advance) => Some(I::Running),
                    (I::Running, IA::End) => Some(I::Ended),
                    (I::Running, IA::Cancel) => Some(I::Cancelled),
                    _ => None,
                };
                assert_eq!(instance(s, a), expected, "{s:?} --{a:?}-->");
            }
        }
        for s in [TimerLife::Scheduled, TimerLife::Fired, TimerLife::Cancelled] {
            for a in [TimerAction::Fire, TimerAction::Cancel] {
                let expected = match (s, a) {
                    (TimerLife::Scheduled, TimerAction::Fire) => Some(TimerLife::Fired),
                    (TimerLife::Scheduled, TimerAction::Cancel) => Some(TimerLife::Cancelled),
                    _ => None,
                };
                assert_eq!(timer(s, a), expected, "{s:?} --{a:?}-->");
            }
        }
        use OutboxAction as OA;
        use OutboxLife as O;
        for s in [O::Pending, O::Sending, O::Sent, O::Dead] {
            for a in [
                OA::Claim,
                OA::Succeed,
                OA::RetryLater,
                OA::Fail,
                OA::LeaseExpired,
                OA::Retry,
            ] {
                let expected = match (s, a) {
                    (O::Pending, OA::Claim) => Some(O::Sending),
                    (O::Sending, OA::Succeed) => Some(O::Sent),
                    (O::Sending, OA::RetryLater | OA::LeaseExpired) => Some(O::Pending),
                    (O::Sending, OA::Fail) => Some(O::Dead),
                    (O::Dead, OA::Retry) => Some(O::Pending),
                    _ => None,
                };
                assert_eq!(outbox(s, a), expected, "{s:?} --{a:?}-->");
            }
        }
    }
}
