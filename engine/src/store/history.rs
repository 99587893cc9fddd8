//! The append-only history of every request, hash-chained.
//!
//! Every event has its place in its request's chain: entry `seq` (from 1) hashes the
//! previous entry's hash, the request, `seq` and the event's JSON text
//! (`link_hash`). The events a command appends together are stored as **one row**: its
//! `seq` is the last of them, its `body` their JSON texts as one array, `prev_hash` the
//! chain's head before the first and `hash` the head after the last (the chain inside the
//! row is computed again on reading). A row of a single event whose body is the event's
//! object, as databases written before this layout hold, reads the same way.
//!
//! One row a command rather than one an event: the ~33 events of the benchmark workload's
//! request were half of the rows it wrote, with the request's key and two hashes repeated on
//! each (bench/README.md, "The third round").

use serde_json::value::RawValue;
use sha2::{Digest as _, Sha256};

use crate::core::Event;
use crate::error::{Error, corrupt};
use crate::store::db::V;

/// The columns of `history`, in the order [`row`] writes its values.
pub(crate) const COLUMNS: &[&str] = &[
    "instance",
    "seq",
    "at",
    "event",
    "body",
    "prev_hash",
    "hash",
];

/// The hash the chain of a request starts from.
pub(crate) fn genesis(instance: &str) -> String {
    crate::sha256_hex(format!("guichet history of {instance}").as_bytes())
}

/// The hash of one history entry, chained to the previous one: of `prev`, `instance`,
/// `seq` and `body`, one per line.
fn link_hash(prev: &str, instance: &str, seq: i64, body: &str) -> String {
    let mut h = Sha256::new();
    for part in [prev, "\n", instance, "\n", &seq.to_string(), "\n", body] {
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The row (`COLUMNS`) of `events` appended together, chained after entry `seq` whose hash
/// is `head`; both are moved to the last event. None when there is no event.
pub(crate) fn row(
    instance: &str,
    seq: &mut i64,
    head: &mut String,
    events: &[Event],
) -> Result<Option<Vec<V>>, Error> {
    #[derive(serde::Deserialize)]
    struct Tag {
        event: String,
    }
    let Some(first) = events.first() else {
        return Ok(None);
    };
    let (at, prev) = (first.at.0, head.clone());
    let mut body = String::from("[");
    let mut name = String::new();
    for (i, event) in events.iter().enumerate() {
        let text = serde_json::to_string(event).map_err(corrupt)?;
        if i == 0 {
            name = serde_json::from_str::<Tag>(&text).map_or_else(|_| String::new(), |t| t.event);
        } else {
            body.push(',');
        }
        *seq += 1;
        *head = link_hash(head, instance, *seq, &text);
        body.push_str(&text);
    }
    body.push(']');
    Ok(Some(vec![
        V::Text(instance.to_owned()),
        V::Int(*seq),
        V::Int(at),
        // The first event names the row: what the command did (the rest follows from it).
        V::Text(name),
        V::Text(body),
        V::Text(prev),
        V::Text(head.clone()),
    ]))
}

/// The JSON texts of a stored body's events, exactly as hashed: the elements of an array,
/// or the body itself when it is one event's object.
fn texts(body: &str) -> Result<Vec<&str>, serde_json::Error> {
    if body.trim_start().starts_with('[') {
        let items: Vec<&RawValue> = serde_json::from_str(body)?;
        Ok(items.into_iter().map(RawValue::get).collect())
    } else {
        Ok(vec![body])
    }
}

/// The events of a stored body, in order.
pub(crate) fn events(body: &str) -> Result<Vec<Event>, Error> {
    texts(body)
        .map_err(corrupt)?
        .into_iter()
        .map(|t| serde_json::from_str(t).map_err(corrupt))
        .collect()
}

/// One event of a request's history.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HistoryRow {
    pub seq: i64,
    pub event: Event,
    /// The chain's head after this event.
    pub hash: String,
}

/// What [`Engine::verify_audit`](crate::Engine::verify_audit) found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditReport {
    pub instances: usize,
    pub events: usize,
    /// The first broken link: instance, history sequence number, what is wrong.
    pub broken: Option<(String, i64, String)>,
}

/// The events of a stored row (its last entry `seq`, `body`, and `prev_hash`, the chain's
/// head before it): each event's text, its entry, and the head after it as computed.
pub(crate) fn chain<'a>(
    instance: &str,
    seq: i64,
    body: &'a str,
    prev_hash: &str,
) -> Result<Vec<(&'a str, i64, String)>, serde_json::Error> {
    let texts = texts(body)?;
    let first = seq + 1 - i64::try_from(texts.len()).unwrap_or(i64::MAX);
    let mut head = prev_hash.to_owned();
    Ok((first..)
        .zip(texts)
        .map(|(n, text)| {
            head = link_hash(&head, instance, n, text);
            (text, n, head.clone())
        })
        .collect())
}

/// Checks a stored row (its last entry `seq`, `body`, `prev_hash`, `hash`) as the one that
/// follows entry `expected - 1`, whose hash is `prev`: how many events it holds, or the entry
/// where the chain breaks and why.
pub(crate) fn check(
    instance: &str,
    expected: i64,
    prev: &str,
    (seq, body, prev_hash, hash): (i64, &str, &str, &str),
) -> Result<usize, (i64, String)> {
    let altered = |first: i64| {
        let what = if seq > first {
            format!("entries {first}-{seq} (written together) do not match their hash")
        } else {
            "its content does not match its hash".to_owned()
        };
        (first, format!("{what} (altered)"))
    };
    let entries = chain(instance, seq, body, prev_hash).map_err(|_| altered(expected))?;
    let Some(((_, first, _), (_, _, last))) = entries.first().zip(entries.last()) else {
        return Err((expected, format!("entry {expected} is missing")));
    };
    if *first > expected {
        return Err((expected, format!("entry {expected} is missing")));
    }
    if *first < expected || prev_hash != prev {
        return Err((*first, "it does not follow the previous entry".to_owned()));
    }
    if last != hash {
        return Err(altered(*first));
    }
    Ok(entries.len())
}

/// Checks that a stored row's `at` and `event` columns, which its hash does not cover (they
/// copy its first event's time and kind, for queries and exports), say what its hashed body
/// says: an alteration of either is found like one of the body.
pub(crate) fn check_columns(body: &str, at: i64, event: &str) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct Head {
        at: i64,
        #[serde(default)]
        event: String,
    }
    let unreadable = || "its content cannot be read (altered)".to_owned();
    let first = texts(body)
        .ok()
        .and_then(|t| t.first().copied())
        .ok_or_else(unreadable)?;
    let head: Head = serde_json::from_str(first).map_err(|_| unreadable())?;
    if head.at != at {
        return Err(format!(
            "its time column ({at}) is not its event's ({}) (altered)",
            head.at
        ));
    }
    if head.event != event {
        return Err(format!(
            "its kind column (`{event}`) is not its event's (`{}`) (altered)",
            head.event
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::core::{Actor, EventKind};

    fn event(step: &str) -> Event {
        Event {
            at: Timestamp(1_000),
            actor: Actor::Requester,
            kind: EventKind::StepEntered { step: step.into() },
        }
    }

    fn stored(r: &[V]) -> (i64, &str, &str, &str) {
        match r {
            [
                _,
                V::Int(seq),
                _,
                _,
                V::Text(body),
                V::Text(prev),
                V::Text(hash),
            ] => (*seq, body, prev, hash),
            _ => panic!("not a history row: {r:?}"),
        }
    }

    #[test]
    fn a_command_s_events_are_one_row_chained_event_by_event() {
        let (mut seq, mut head) = (0, genesis("r"));
        let first = row("r", &mut seq, &mut head, &[event("a")])
            .unwrap()
            .unwrap();
        let second = row("r", &mut seq, &mut head, &[event("b"), event("c")])
            .unwrap()
            .unwrap();
        assert!(row("r", &mut seq, &mut head, &[]).unwrap().is_none());
        assert_eq!(seq, 3);
        // Each event chained as if it were a row of its own.
        let mut h = genesis("r");
        for (n, e) in [(1, "a"), (2, "b"), (3, "c")] {
            h = link_hash(&h, "r", n, &serde_json::to_string(&event(e)).unwrap());
        }
        assert_eq!(head, h);
        assert_eq!(check("r", 1, &genesis("r"), stored(&first)), Ok(1));
        let (_, _, after_first, _) = stored(&second);
        assert_eq!(check("r", 2, after_first, stored(&second)), Ok(2));
        let (s, body, prev, _) = stored(&second);
        let entries: Vec<i64> = chain("r", s, body, prev)
            .unwrap()
            .iter()
            .map(|e| e.1)
            .collect();
        assert_eq!(entries, [2, 3]);
        assert_eq!(events(stored(&second).1).unwrap(), [event("b"), event("c")]);
    }

    #[test]
    fn a_row_of_one_event_object_reads_as_before() {
        let text = serde_json::to_string(&event("a")).unwrap();
        let hash = link_hash(&genesis("r"), "r", 1, &text);
        let g = genesis("r");
        assert_eq!(check("r", 1, &g, (1, &text, &g, &hash)), Ok(1));
        assert_eq!(
            chain("r", 1, &text, &genesis("r")).unwrap(),
            [(text.as_str(), 1, hash.clone())]
        );
        assert_eq!(events(&text).unwrap(), [event("a")]);
    }

    #[test]
    fn altered_missing_and_misplaced_rows_are_named() {
        let (mut seq, mut head) = (0, genesis("r"));
        let r = row("r", &mut seq, &mut head, &[event("a"), event("b")])
            .unwrap()
            .unwrap();
        let (s, body, prev, hash) = stored(&r);
        let g = genesis("r");
        let altered = body.replace("\"b\"", "\"x\"");
        let err = check("r", 1, &g, (s, &altered, prev, hash)).err().unwrap();
        assert_eq!(err.0, 1);
        assert!(
            err.1.contains("entries 1-2") && err.1.contains("altered"),
            "{err:?}"
        );
        let err = check("r", 1, &g, (s, "[not json", prev, hash))
            .err()
            .unwrap();
        assert!(err.1.contains("altered"), "{err:?}");
        // A row starting after the expected entry: the ones between are missing.
        let err = check("r", 1, &g, (s + 1, body, prev, hash)).err().unwrap();
        assert_eq!(err, (1, "entry 1 is missing".to_owned()));
        let err = check("r", 1, &g, (s, "[]", prev, hash)).err().unwrap();
        assert!(err.1.contains("missing"), "{err:?}");
        let err = check("r", 1, "other", (s, body, prev, hash)).err().unwrap();
        assert!(err.1.contains("does not follow"), "{err:?}");
    }
}
