//! `/`, `/healthz` (liveness), `/readyz` (readiness), `/metrics`, and the API documentation (the
//! browser pages are in `pages` and `console`).

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;
use crate::openapi::{Auth, Doc, schema};
use crate::reply::Reply;
use crate::router::Route;
use hyper::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

/// `GET /`.
#[derive(Serialize, ToSchema)]
pub struct Root {
    message: &'static str,
    version: &'static str,
}

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    status: &'static str,
    database: &'static str,
}

/// `GET /readyz`.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`.
    status: &'static str,
    /// `ok`: the writer ran a probe job.
    writer: &'static str,
    /// How long the probe waited for the writer, in milliseconds.
    writer_wait_ms: f64,
}

pub fn routes() -> Vec<Route> {
    vec![
        route!(GET "/" => root as get_root, Doc::new("meta", "Service name and version", Auth::Open).ok(200, schema::<Root>)),
        route!(GET "/healthz" => healthz as healthz, Doc::new("meta", "Liveness: the database answers a read", Auth::Open).ok(200, schema::<Health>)),
        route!(GET "/readyz" => readyz as readyz, Doc::new("meta", "Readiness: the writer takes work within 2 s (503 otherwise)", Auth::Open)
            .ok(200, schema::<Readiness>), blocking),
        route!(GET "/metrics" => metrics, Doc::new("meta", "Metrics: OpenMetrics 1.0.0 when asked for, else Prometheus text 0.0.4", Auth::Hidden)),
        route!(GET "/openapi.json" => openapi_json, Doc::new("meta", "This OpenAPI document", Auth::Hidden)),
        route!(GET "/docs" => docs, Doc::new("meta", "Interactive API documentation", Auth::Hidden)),
        route!(GET "/docs/{*file}" => docs, Doc::new("meta", "Documentation assets", Auth::Hidden)),
        route!(GET "/redoc" => redoc, Doc::new("meta", "Alias of /docs", Auth::Hidden)),
    ]
}

fn root(_: &AppState, _: &Req) -> Result<Reply, ApiError> {
    Ok(Reply::ok(&Root {
        message: "Bespin Tool Invocation Gateway",
        version: "0.1.0",
    }))
}

fn healthz(s: &AppState, _: &Req) -> Result<Reply, ApiError> {
    Ok(match s.bespin.health() {
        Ok(()) => Reply::ok(&Health {
            status: "ok",
            database: "connected",
        }),
        Err(e) => {
            tracing::error!("health check failed: {e}");
            Reply::detail(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"status": "unhealthy", "database": "disconnected"}),
            )
        }
    })
}

fn readyz(s: &AppState, _: &Req) -> Result<Reply, ApiError> {
    use crate::readiness::{Ready, TIMEOUT};
    Ok(match s.readiness.check(&s.bespin) {
        Ready::Yes(waited) => Reply::ok(&Readiness {
            status: "ready",
            writer: "ok",
            writer_wait_ms: waited.as_secs_f64() * 1000.0,
        }),
        Ready::No => {
            tracing::warn!("not ready: the writer took no work within {TIMEOUT:?}");
            Reply::detail(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"status": "not ready", "writer": format!("no answer within {} s", TIMEOUT.as_secs())}),
            )
        }
    })
}

/// Open, unless `BESPIN_METRICS_TOKEN` is set: then only `Authorization: Bearer <token>`
/// (compared as digests) reads it, as Prometheus sends it (`authorization: {credentials: …}`).
fn metrics(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    if let Some(expected) = &s.config.metrics_token {
        let given = r.header("authorization");
        let token = given.as_deref().and_then(|h| h.strip_prefix("Bearer "));
        if !token.is_some_and(|t| bespin_core::ids::secrets_match(expected, t.trim())) {
            return Ok(Reply::detail(StatusCode::UNAUTHORIZED, "Not authenticated")
                .with_header("www-authenticate", "Bearer"));
        }
    }
    let (content_type, body) = s.metrics.negotiate(r.header("accept").as_deref());
    Ok(Reply::raw(StatusCode::OK, content_type, body))
}

fn openapi_json(s: &AppState, _: &Req) -> Result<Reply, ApiError> {
    Ok(Reply::raw(
        StatusCode::OK,
        "application/json",
        crate::openapi::json(s.routes()),
    ))
}

/// The Content-Security-Policy of `/docs`: Swagger UI's own scripts and styles from this
/// origin only, no inline script. (Its components set inline styles, and the page anchors its
/// assets with a `<base>` of this origin, hence those two allowances.)
pub(crate) const DOCS_CSP: &str = "default-src 'self'; script-src 'self'; \
style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; \
frame-ancestors 'none'";

fn docs(_: &AppState, r: &Req) -> Result<Reply, ApiError> {
    match crate::openapi::swagger_file(r.param("file")) {
        Some((mut bytes, content_type)) => {
            if content_type.starts_with("text/html") {
                // The page links its assets relatively; anchor them under /docs/ whether it was
                // fetched as /docs or /docs/.
                let page = String::from_utf8_lossy(&bytes).replacen(
                    "<head>",
                    "<head><base href=\"/docs/\">",
                    1,
                );
                bytes = page.into_bytes();
            }
            let ct: &'static str = match content_type.as_str() {
                t if t.starts_with("text/html") => "text/html; charset=utf-8",
                t if t.contains("javascript") => "text/javascript; charset=utf-8",
                t if t.starts_with("text/css") => "text/css; charset=utf-8",
                t if t.starts_with("image/png") => "image/png",
                _ => "application/octet-stream",
            };
            Ok(Reply::raw(StatusCode::OK, ct, bytes)
                .with_header("content-security-policy", DOCS_CSP))
        }
        None => Ok(Reply::detail(StatusCode::NOT_FOUND, "Not Found")),
    }
}

fn redoc(_: &AppState, _: &Req) -> Result<Reply, ApiError> {
    Ok(Reply::raw(
        StatusCode::TEMPORARY_REDIRECT,
        "text/plain; charset=utf-8",
        "",
    )
    .with_header("location", "/docs/"))
}
