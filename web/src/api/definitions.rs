//! Desks' definitions: the deployed revisions, deploying a new one (an administrator's
//! token with the `deploy` scope), and the drawing of a desk's process.

use super::schema::{DeployBody, Deployed, GraphFormat, GraphQuery, Revision};
use super::*;

/// Every deployed revision of every desk, newest first per desk.
#[utoipa::path(get, path = "/api/v1/definitions", tag = "definitions",
    responses((status = 200, description = "The revisions", body = Vec<Revision>)))]
pub(crate) async fn list(State(s): Shared, caller: Caller) -> ApiResult<Json<Vec<Revision>>> {
    caller.may(Scope::Read)?;
    let mut out: Vec<Revision> = Vec::new();
    for (desk, revision, version, at) in s.engine.definitions().await? {
        // Newest first per desk: the first of a desk is its current one.
        let current = out.last().is_none_or(|r| r.desk != desk);
        out.push(Revision {
            desk,
            revision,
            version,
            deployed_at: guichet_engine::clock::Timestamp(at).rfc3339(),
            current,
        });
    }
    Ok(Json(out))
}

/// Deploy a definition, `{"source": "..."}` in KDL: checked, and a new revision of its desk
/// when its content is new (running requests stay on the revision they started with). A
/// definition with errors is refused with the checker's diagnostics, and nothing is
/// deployed. For administrators, with a token of the `deploy` scope.
#[utoipa::path(post, path = "/api/v1/definitions", tag = "definitions",
    request_body = DeployBody,
    responses(
        (status = 201, description = "Deployed: a new revision", body = Deployed),
        (status = 200, description = "The same source was deployed already: its revision",
            body = Deployed),
        (status = 422, description = "The definition has errors (`invalid_definition`, with \
            the checker's `diagnostics`); nothing was deployed", body = ErrorBody),
    ))]
pub(crate) async fn deploy(
    State(s): Shared,
    caller: Caller,
    ApiJson(body): ApiJson<DeployBody>,
) -> ApiResult {
    let email = caller.may(Scope::Deploy)?;
    administrator(
        &s,
        &email,
        "only administrators deploy definitions (`guichet user add EMAIL --admin`)",
    )
    .await?;
    match s.engine.deploy(&body.source).await {
        Ok(d) => {
            let status = if d.new {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let deployed = Deployed {
                desk: d.name,
                revision: d.revision,
                version: d.version,
                hash: d.hash,
                new: d.new,
            };
            Ok((status, Json(deployed)).into_response())
        }
        Err(Error::Definition(diagnostics)) => {
            let errors = diagnostics
                .iter()
                .filter(|d| d.severity == guichet_definitions::diagnostic::Severity::Error)
                .count();
            Err(ApiError {
                diagnostics: Some(
                    diagnostics
                        .iter()
                        .map(|d| d.to_json("definition", &body.source))
                        .collect(),
                ),
                ..ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_definition",
                    format!(
                        "the definition has {errors} error(s), listed in `diagnostics` \
                         (each with its line, column and fix); nothing was deployed"
                    ),
                )
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// The drawing of a desk's process (its current revision): SVG, DOT or Mermaid.
#[utoipa::path(get, path = "/api/v1/desks/{name}/graph", tag = "definitions",
    params(("name" = String, Path, description = "The desk's name"), GraphQuery),
    responses((status = 200, description = "The drawing, in the format asked for",
        content(
            (String = "image/svg+xml"),
            (String = "text/vnd.graphviz"),
            (String = "text/plain"),
        ))))]
pub(crate) async fn graph(
    State(s): Shared,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<GraphQuery>,
) -> ApiResult {
    caller.may(Scope::Read)?;
    let desks = s.engine.desks().await?;
    let p = desks
        .get(&name)
        .ok_or_else(|| ApiError::not_found(&format!("desk `{name}`")))?;
    let (content_type, text) = match query.format.unwrap_or_default() {
        GraphFormat::Svg => ("image/svg+xml", guichet_definitions::graph::svg(p)),
        GraphFormat::Dot => (
            "text/vnd.graphviz; charset=utf-8",
            guichet_definitions::graph::dot(p),
        ),
        GraphFormat::Mermaid => (
            "text/plain; charset=utf-8",
            guichet_definitions::graph::mermaid(p),
        ),
    };
    Ok(([(header::CONTENT_TYPE, content_type)], text).into_response())
}
