//! Evaluating conditions over a request's data with CEL.
//!
//! Every step of the process is a variable (its id with `-` as `_`), a map holding `count`
//! (0 before the step first completes), `outcome` once it has one, and the fields its form
//! collected. A field never set is absent, so `has(step.field)` tells.

use std::collections::{BTreeMap, HashMap};

use cel::Value as Cel;
use guichet_definitions::expr::{Condition, cel_name};
use guichet_definitions::model::Process;
use serde_json::Value;

use crate::core::state::StepData;

fn to_cel(v: &Value) -> Option<Cel> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Cel::Int(i),
            None => {
                let f = n.as_f64()?;
                // Whole numbers compare with integer literals (`budget > 10`).
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    Cel::Int(f as i64)
                } else {
                    Cel::Float(f)
                }
            }
        },
        Value::String(s) => Cel::String(s.clone().into()),
        Value::Array(items) => {
            Cel::List(items.iter().filter_map(to_cel).collect::<Vec<_>>().into())
        }
        Value::Object(map) => {
            let m: HashMap<String, Cel> = map
                .iter()
                .filter_map(|(k, v)| to_cel(v).map(|v| (k.clone(), v)))
                .collect();
            Cel::from(m)
        }
    })
}

/// The variables a condition sees.
pub fn context<'a>(p: &Process, data: &BTreeMap<String, StepData>) -> cel::Context<'a, 'a> {
    // The standard library's functions are registered once per thread, not per condition:
    // building them was a third of the simulator's time.
    thread_local! {
        static STDLIB: std::sync::Arc<cel::Env> = std::sync::Arc::new(cel::Env::stdlib());
    }
    let mut ctx = cel::Context::with_env(STDLIB.with(std::sync::Arc::clone));
    for step in &p.steps {
        let mut m: HashMap<String, Cel> = HashMap::new();
        let d = data.get(&step.id);
        m.insert(
            "count".to_owned(),
            Cel::Int(d.map_or(0, |d| i64::from(d.count))),
        );
        if let Some(d) = d {
            if let Some(o) = &d.outcome {
                m.insert("outcome".to_owned(), Cel::String(o.clone().into()));
            }
            for (k, v) in &d.fields {
                if let Some(v) = to_cel(v) {
                    m.insert(cel_name(k), v);
                }
            }
        }
        ctx.add_variable_from_value(cel_name(&step.id), Cel::from(m));
    }
    ctx
}

/// Evaluates a condition: `Ok(true/false)`, or why it could not be evaluated.
pub fn eval(c: &Condition, ctx: &cel::Context<'_, '_>) -> Result<bool, String> {
    match c.program().execute(ctx) {
        Ok(Cel::Bool(b)) => Ok(b),
        Ok(other) => Err(format!("the condition gives {other:?}, not true or false")),
        Err(e) => Err(e.to_string()),
    }
}
