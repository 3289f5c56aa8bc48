//! Operations: `GET /v1/admin/backup`, the online snapshot behind `bespin backup` and
//! `bespin check` while the server runs.

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;
use crate::openapi::{Auth, Doc};
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::Error;
use hyper::StatusCode;

pub fn routes() -> Vec<Route> {
    vec![route!(GET "/v1/admin/backup" => backup,
        Doc::new("admin", "A consistent snapshot of the whole database (a redb file)", Auth::Hidden), blocking)]
}

/// The platform-admin key or this server's control token (from `<db>.control`); anything else
/// is the admin API's 404.
fn authorized(s: &AppState, r: &Req) -> Result<(), ApiError> {
    if let (Some(expected), Some(given)) =
        (&s.config.control_token, r.header("x-bespin-control-token"))
        && bespin_core::ids::secrets_match(expected, &given)
    {
        return Ok(());
    }
    r.require_platform_admin(s)
}

fn backup(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    authorized(s, r)?;
    let dir = bespin_core::files::private_temp_dir("bespin-backup")
        .map_err(|e| ApiError::body(Error::Storage(e.to_string())))?;
    let file = dir.join("snapshot.redb");
    let out = s
        .bespin
        .backup(&file)
        .and_then(|_| std::fs::read(&file).map_err(|e| Error::Storage(e.to_string())));
    let _ = std::fs::remove_dir_all(&dir);
    let bytes = out.map_err(ApiError::body)?;
    Ok(
        Reply::raw(StatusCode::OK, "application/octet-stream", bytes).with_header(
            "content-disposition",
            "attachment; filename=\"bespin-backup.redb\"".to_owned(),
        ),
    )
}
