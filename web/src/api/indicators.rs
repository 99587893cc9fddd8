//! The indicators of ended requests, as the dashboard and `guichet kpi` compute them: the
//! desks' declared indicators, the lead time and the per-step timings (`docs/kpi.md`).

use super::schema::IndicatorsQuery;
use super::*;

use guichet_engine::clock::Timestamp;
use guichet_engine::indicators::kpi::{Indicators, Query};

/// A day of the query (`YYYY-MM-DD`), as the instant it starts (UTC).
fn day(name: &str, text: &str) -> Result<Timestamp, ApiError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, format)
        .map(|d| Timestamp::from_datetime(d.midnight().assume_utc()))
        .map_err(|_| {
            ApiError::of_status(
                StatusCode::BAD_REQUEST,
                Some(format!(
                    "`{name}` is a day written YYYY-MM-DD, not `{text}`"
                )),
            )
        })
}

/// The indicators of the requests that ended in the period, per desk model (or per
/// revision, month or quarter). For administrators, as the dashboard.
#[utoipa::path(get, path = "/api/v1/indicators", tag = "indicators",
    params(IndicatorsQuery),
    responses(
        (status = 200, description = "The indicators", body = Indicators),
        (status = 404, description = "A desk that is not deployed (`not_found`)",
            body = ErrorBody),
    ))]
pub(crate) async fn indicators(
    State(s): Shared,
    caller: Caller,
    ApiQuery(query): ApiQuery<IndicatorsQuery>,
) -> ApiResult<Json<Indicators>> {
    let email = caller.may(Scope::Read)?;
    administrator(
        &s,
        &email,
        "the indicators are for administrators, as the dashboard",
    )
    .await?;
    let desks: Vec<String> = query
        .desks
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect();
    let known = s.engine.desks().await?;
    if let Some(unknown) = desks.iter().find(|d| !known.contains_key(*d)) {
        return Err(ApiError::not_found(&format!("desk `{unknown}`")));
    }
    let q = Query {
        desks,
        from: query.from.as_deref().map(|d| day("from", d)).transpose()?,
        to: query.to.as_deref().map(|d| day("to", d)).transpose()?,
        compare: query.compare.unwrap_or_default(),
        filters: Vec::new(),
    };
    Ok(Json(s.engine.indicators(&q).await?))
}
