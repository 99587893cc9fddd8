//! What the API takes and answers, as types: the handlers build these, and the OpenAPI
//! document is derived from them (`utoipa`), so the document cannot say one thing while the
//! server sends another. The dossier's parts (intake, steps, timeline, open waits) are the
//! engine's own types, which derive their schemas too.

use guichet_definitions::model::{FieldType, Form as FormDef, Process};
use guichet_engine::core::{self, dossier};
use guichet_engine::runtime::TaskRow;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An RFC 3339 time, in UTC.
fn timestamp(t: Option<i64>) -> Option<String> {
    t.map(|t| guichet_engine::clock::Timestamp(t).rfc3339())
}

/// The error every failure answers, whatever the status.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    pub(crate) error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// Stable: `unauthorized` (401), `forbidden` (403), `not_found` (404),
    /// `method_not_allowed` (405), `invalid` (400 for a malformed path, query or body, 422 for
    /// a value the request does not take), `refused` and `conflict` (409),
    /// `payload_too_large` (413), `unsupported_media_type` (415), `too_many_requests` (429),
    /// `unavailable` (503), `internal` (500), `invalid_idempotency_key` (400),
    /// `idempotency_key_reused` (422), `invalid_definition` (422, with `diagnostics`).
    #[schema(value_type = String, example = "not_found")]
    pub(crate) code: &'static str,
    /// What went wrong and what to do, in plain words.
    pub(crate) message: String,
    /// For `invalid`: the field (or parameter) and what is wrong with its value.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub(crate) fields: Option<serde_json::Value>,
    /// For `invalid_definition`: the checker's diagnostics, as `guichet check --format
    /// json` gives them (code, severity, message, line, column, label, help, docs).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub(crate) diagnostics: Option<Vec<serde_json::Value>>,
}

/// The values of a form: the field's id, its value (text, number, `true`/`false`, a date
/// `YYYY-MM-DD`, an option's value; for a document field, its description object when the
/// file is a part of a multipart call).
pub(crate) type Fields = guichet_engine::core::Fields;

/// A call that gives the values of a form.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct FieldsBody {
    #[serde(default)]
    #[schema(value_type = Object)]
    pub(crate) fields: Fields,
}

/// A call that carries documents (`multipart/form-data`): its JSON body as the text of a
/// part named `body`, and each document as a file part named after its field.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub(crate) struct Upload {
    /// The call's JSON body, as text (what the `application/json` variant sends).
    #[schema(content_media_type = "application/json")]
    body: Option<String>,
}

/// Why a request is withdrawn.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct Withdrawal {
    /// Why, kept in the request's history: at most 10,000 characters, no control
    /// character but tabs and line breaks.
    #[schema(
        max_length = 10000,
        pattern = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$"
    )]
    pub(crate) reason: Option<String>,
}

/// A decision on a task.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct Decision {
    /// One of the task's outcomes (see `GET /api/v1/tasks/{request}/{task}`); required
    /// when it has any.
    pub(crate) outcome: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub(crate) fields: Fields,
    /// Why, shown to staff in the timeline (required by outcomes declared `comment=#true`):
    /// at most 10,000 characters, no control character but tabs and line breaks.
    #[schema(
        max_length = 10000,
        pattern = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$"
    )]
    pub(crate) comment: Option<String>,
}

/// Who the task goes to.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct Delegation {
    /// The person's email address: one `@`, no space (around it, spaces are dropped).
    #[schema(pattern = "^\\s*[^@\\s]*@[^@\\s]*\\s*$")]
    pub(crate) to: String,
}

/// How the account gets its task emails.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct PreferenceBody {
    /// One daily digest instead of an email per new task and reminder.
    pub(crate) digest: bool,
    /// `fr` (the default) or `en`.
    #[schema(value_type = Option<String>, pattern = "^(fr|en)$")]
    pub(crate) language: Option<String>,
}

/// How the account gets its task emails, as saved.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Preferences {
    pub(crate) email: String,
    pub(crate) digest: bool,
    /// `fr` or `en`.
    pub(crate) language: &'static str,
}

impl From<guichet_engine::runtime::digest::Preference> for Preferences {
    fn from(p: guichet_engine::runtime::digest::Preference) -> Self {
        Preferences {
            email: p.email,
            digest: p.digest,
            language: p.language.code(),
        }
    }
}

/// What a pull provider asks for.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct FetchAndLock {
    /// The provider's id (`--provider ID=pull`).
    pub(crate) provider: String,
    /// How many calls at most (1 to 100).
    #[serde(default = "default_max", deserialize_with = "integer")]
    #[schema(minimum = 1, maximum = 100, default = 10)]
    pub(crate) max: i64,
    /// How long they stay locked for this provider (1 to 86,400 seconds).
    #[serde(default = "default_lock", deserialize_with = "integer")]
    #[schema(minimum = 1, maximum = 86400, default = 300)]
    pub(crate) lock_seconds: i64,
}

/// An integer as JSON Schema has it: `30` or `30.0`, not `30.5`.
fn integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let n = f64::deserialize(d)?;
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        #[allow(clippy::cast_possible_truncation)]
        Ok(n as i64)
    } else {
        Err(serde::de::Error::custom(format!("{n} is not an integer")))
    }
}

fn default_max() -> i64 {
    10
}

fn default_lock() -> i64 {
    300
}

/// A pull provider's answer to a call it locked.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct PulledResult {
    pub(crate) provider: String,
    /// The `attempt` the call came with (a later lock makes it stale).
    #[serde(deserialize_with = "integer")]
    pub(crate) attempt: i64,
    pub(crate) outcome: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub(crate) fields: Fields,
}

/// One field of a form: what to send, and what it accepts.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FormField {
    pub(crate) id: String,
    #[serde(rename = "type")]
    #[schema(schema_with = field_types)]
    pub(crate) ty: &'static str,
    pub(crate) required: bool,
    pub(crate) label: Option<String>,
    pub(crate) help: Option<String>,
    /// For a choice: the values it takes.
    pub(crate) options: Vec<ChoiceOption>,
    pub(crate) min: Option<f64>,
    pub(crate) max: Option<f64>,
    pub(crate) max_length: Option<u32>,
}

/// The names of the field types, from the language's list.
fn field_types() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(FieldType::ALL.iter().map(|(name, _)| *name)))
        .build()
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ChoiceOption {
    pub(crate) value: String,
    pub(crate) label: Option<String>,
}

/// A form's fields, in order.
pub(crate) fn form(form: Option<&FormDef>) -> Vec<FormField> {
    form.map_or_else(Vec::new, |f| {
        f.fields
            .iter()
            .map(|f| FormField {
                id: f.id.clone(),
                ty: FieldType::ALL
                    .iter()
                    .find(|(_, x)| *x == f.ty)
                    .map_or("text", |(n, _)| n),
                required: f.required,
                label: f.label.clone(),
                help: f.help.clone(),
                options: f
                    .options
                    .iter()
                    .map(|o| ChoiceOption {
                        value: o.value.clone(),
                        label: o.label.clone(),
                    })
                    .collect(),
                min: f.min,
                max: f.max,
                max_length: f.max_length,
            })
            .collect()
    })
}

/// A deployed desk and its intake form.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Desk {
    pub(crate) name: String,
    pub(crate) title: String,
    pub(crate) version: u32,
    pub(crate) description: Option<String>,
    /// What a submission sends (`POST /api/v1/desks/{name}/requests`).
    pub(crate) intake: Vec<FormField>,
}

impl Desk {
    pub(crate) fn of(p: &Process) -> Self {
        Desk {
            name: p.name.clone(),
            title: p.title.clone(),
            version: p.version,
            description: p.description.clone(),
            intake: form(p.start().form()),
        }
    }
}

/// A task as its row says.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TaskCore {
    /// Its number in the request.
    pub(crate) task: i64,
    /// The step's id, and its title.
    pub(crate) step: String,
    pub(crate) title: Option<String>,
    /// The role it is open to.
    pub(crate) role: String,
    /// Who took it, or whom it was delegated to.
    pub(crate) assignee: Option<String>,
    /// `open`, `claimed`, `completed`, or how it was closed otherwise.
    pub(crate) state: String,
    #[schema(format = DateTime)]
    pub(crate) created_at: Option<String>,
    #[schema(format = DateTime)]
    pub(crate) due_at: Option<String>,
    pub(crate) overdue: bool,
    /// Who closed it.
    pub(crate) closed_by: Option<String>,
}

impl TaskCore {
    pub(crate) fn of(t: &TaskRow, p: Option<&Process>) -> Self {
        TaskCore {
            task: t.seq,
            step: t.step.clone(),
            title: p
                .and_then(|p| p.step(&t.step))
                .map(|s| s.display_name().to_owned()),
            role: t.role.clone(),
            assignee: t.assignee.clone(),
            state: t.state.clone(),
            created_at: timestamp(Some(t.created_at)),
            due_at: timestamp(t.due_at),
            overdue: t.overdue,
            closed_by: t.closed_by.clone(),
        }
    }
}

/// A task, and the request it belongs to.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Task {
    /// The request's id.
    pub(crate) request: String,
    #[serde(flatten)]
    pub(crate) task: TaskCore,
}

impl Task {
    pub(crate) fn of(t: &TaskRow, p: Option<&Process>) -> Self {
        Task {
            request: t.instance.clone(),
            task: TaskCore::of(t, p),
        }
    }
}

/// A task of the inbox.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct InboxItem {
    #[serde(flatten)]
    pub(crate) task: Task,
    pub(crate) desk: String,
    /// The request's title.
    pub(crate) request_title: String,
}

/// A task to decide: what it asks and how it may end.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TaskDetail {
    #[serde(flatten)]
    pub(crate) task: Task,
    pub(crate) description: Option<String>,
    /// What a decision sends in `fields`.
    pub(crate) form: Vec<FormField>,
    pub(crate) outcomes: Vec<Outcome>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Outcome {
    pub(crate) id: String,
    pub(crate) label: String,
}

/// Where a request stands: its status, result and open tasks (overdue first, then by
/// deadline).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Standing {
    /// `running`, `ended` or `cancelled`.
    pub(crate) status: &'static str,
    /// When it ended: how.
    pub(crate) result: Option<&'static str>,
    pub(crate) open_tasks: Vec<Task>,
}

impl Standing {
    pub(crate) fn of(id: &str, p: &Process, inst: &core::Instance) -> Self {
        let (status, result) = guichet_engine::runtime::status_str(inst.status);
        let mut open: Vec<_> = inst.tasks.values().collect();
        open.sort_by_key(|t| (!t.overdue, t.due_at, t.seq));
        Standing {
            status,
            result,
            open_tasks: open
                .into_iter()
                .map(|t| Task::of(&TaskRow::open(id, p, t), Some(p)))
                .collect(),
        }
    }
}

/// A request after an action on it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RequestStanding {
    pub(crate) id: String,
    #[serde(flatten)]
    pub(crate) standing: Standing,
}

/// A task after an action on it, and where its request now stands.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Acted {
    #[serde(flatten)]
    pub(crate) task: TaskCore,
    pub(crate) request: RequestStanding,
}

/// A submitted request.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Submitted {
    pub(crate) id: String,
    /// The reference the sponsor is given.
    pub(crate) reference: String,
    /// Where it stands (`running`, ...), for an account that may see the desk's requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) result: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) open_tasks: Option<Vec<Task>>,
}

/// A request: what was asked, what each step collected, where it stands, what happened.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Request {
    pub(crate) id: String,
    pub(crate) reference: String,
    pub(crate) desk: String,
    pub(crate) title: String,
    #[schema(format = DateTime)]
    pub(crate) started_at: Option<String>,
    #[schema(format = DateTime)]
    pub(crate) ended_at: Option<String>,
    pub(crate) intake: Vec<dossier::FieldValue>,
    pub(crate) steps: Vec<dossier::StepRecord>,
    pub(crate) open_waits: Vec<dossier::OpenWait>,
    #[serde(flatten)]
    pub(crate) standing: Standing,
    /// In plain terms (left out with `?history=false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) timeline: Option<Vec<dossier::Entry>>,
    /// The events as recorded (left out with `?history=false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub(crate) history: Option<Vec<core::Event>>,
}

/// A call a pull provider took.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LockedCall {
    /// The call's id, to complete it with.
    pub(crate) id: String,
    /// The fencing number to complete it with.
    pub(crate) attempt: i64,
    pub(crate) desk: String,
    pub(crate) request: String,
    pub(crate) reference: String,
    pub(crate) title: String,
    pub(crate) step: String,
    pub(crate) provider: String,
    #[schema(format = DateTime)]
    pub(crate) lock_expires_at: Option<String>,
    pub(crate) outcomes: Option<Vec<String>>,
    pub(crate) form: Vec<FormField>,
}

/// A pull provider's answer, taken.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ExternalCompleted {
    pub(crate) id: String,
    pub(crate) completed: bool,
}

/// The inbox's query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct InboxQuery {
    /// At most this many tasks (default 200).
    #[param(minimum = 0, maximum = 1000)]
    pub(crate) limit: Option<u32>,
}

/// A request's query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RequestQuery {
    /// `false`: where the request stands, without its history or timeline (for pollers:
    /// nothing read but the request).
    pub(crate) history: Option<bool>,
}

/// A deployed revision of a desk's definition.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Revision {
    pub(crate) desk: String,
    /// 1 for the first deployment of the desk, then one more for each new content.
    pub(crate) revision: i64,
    /// The version the definition declares.
    pub(crate) version: i64,
    #[schema(format = DateTime)]
    pub(crate) deployed_at: String,
    /// Whether new requests start on it (the desk's latest revision).
    pub(crate) current: bool,
}

/// A definition to deploy.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct DeployBody {
    /// The definition, in KDL (`docs/definition-language.md`).
    pub(crate) source: String,
}

/// A deployed definition.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Deployed {
    pub(crate) desk: String,
    pub(crate) revision: i64,
    pub(crate) version: u32,
    /// The SHA-256 of the source.
    pub(crate) hash: String,
    /// False when the same source was deployed already: its revision, unchanged.
    pub(crate) new: bool,
}

/// How a desk's process is drawn.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum GraphFormat {
    /// An SVG image (`image/svg+xml`).
    #[default]
    Svg,
    /// Graphviz's DOT (`text/vnd.graphviz`).
    Dot,
    /// A Mermaid flowchart (`text/plain`).
    Mermaid,
}

/// A drawing's query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct GraphQuery {
    /// `svg` (the default), `dot` or `mermaid`.
    #[param(inline)]
    pub(crate) format: Option<GraphFormat>,
}

/// Which requests the indicators count, and how they are grouped.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct IndicatorsQuery {
    /// Desk names, with commas between them; all desks when absent.
    pub(crate) desks: Option<String>,
    /// Requests that ended on or after this day (UTC).
    #[param(value_type = Option<String>, format = Date)]
    pub(crate) from: Option<String>,
    /// Requests that ended before this day (UTC).
    #[param(value_type = Option<String>, format = Date)]
    pub(crate) to: Option<String>,
    /// One group per desk model (the default), per deployed revision, per month or per
    /// quarter of the requests' end.
    #[param(inline)]
    pub(crate) compare: Option<guichet_engine::indicators::kpi::Compare>,
}
