//! The functional core: advancing an instance is a pure function returning the new state, the
//! effects and the history events. No I/O, no clock, no randomness: the same inputs always
//! give the same outputs, which the simulator relies on.

pub mod eval;
pub mod form;
pub mod io;
pub mod machine;
pub mod state;

pub use io::{Actor, Command, Effect, Event, EventKind, Recipient, Transition};
pub use machine::{Error, advance, start};
pub use state::{Fields, Instance, InstanceStatus, Seq, Task, TaskState, Timer, TimerKind};
