//! Tasks: `POST/GET /v1/tasks`, `GET/PATCH /v1/tasks/{task_id}`,
//! `POST /v1/tasks/{task_id}/complete`.

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;
use crate::openapi::{Auth, Doc, schema};
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::Op;
use bespin_core::coreos::deletion::Deleted;
use bespin_core::coreos::tasks::{self, NewTask, Task, TaskPage, TaskPatch, TaskQuery};

pub fn routes() -> Vec<Route> {
    let d = |summary| Doc::new("tasks", summary, Auth::Tenant);
    vec![
        route!(POST "/v1/tasks" => create as create_task, d("Create a task (linked_entity_type + linked_entity_id optionally link a record)")
            .body(schema::<NewTask>).ok(201, schema::<Task>)).paced(),
        route!(GET "/v1/tasks" => list as list_tasks, d("The tenant's tasks, by due date (undated last), then newest first")
            .query(&[("status", "todo | doing | done; all or empty: any"), ("assigned_to_user_id", "exact assignee"),
                ("due_before", "YYYY-MM-DD, inclusive"), ("limit", "1..100, default 50"), ("offset", "default 0")])
            .ok(200, schema::<TaskPage>)),
        route!(DELETE "/v1/tasks/{task_id}" => delete as delete_task, d("Delete a task (its creator or an admin): gone from lists and search at once; its timeline stays").ok(200, schema::<Deleted>)),
        route!(GET "/v1/tasks/{task_id}" => get as get_task, d("A task").ok(200, schema::<Task>)),
        route!(PATCH "/v1/tasks/{task_id}" => update as update_task, d("Edit a task (creator, assignee or admin)")
            .body(schema::<TaskPatch>).ok(200, schema::<Task>)).paced(),
        route!(POST "/v1/tasks/{task_id}/complete" => complete as complete_task, d("Mark a task done (assignee or admin); no body")
            .ok(200, schema::<Task>)),
    ]
}

fn create(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = r.json()?;
    let caller = r.principal(s)?;
    let req = NewTask::from_json(&body)?;
    Ok(Reply::write(
        Op::with(caller, req, tasks::create_rendered),
        Reply::created_rendered,
    ))
}

fn list(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let q = TaskQuery::from_json(&r.query_json()).map_err(ApiError::query)?;
    Ok(Reply::ok(&s.bespin.list_tasks(&caller, &q)?))
}

fn get(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    Ok(Reply::ok(&s.bespin.get_task(&caller, r.param("task_id"))?))
}

fn update(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = r.json()?;
    let caller = r.principal(s)?;
    let patch = TaskPatch::from_json(&body)?;
    let task_id = r.param("task_id").to_owned();
    Ok(Reply::write(
        Op::on_with(caller, task_id, patch, tasks::update),
        Reply::ok,
    ))
}

/// The contract takes no body here and ignores any that is sent, so it is not parsed.
fn complete(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let task_id = r.param("task_id").to_owned();
    Ok(Reply::write(
        Op::on(caller, task_id, tasks::complete),
        Reply::ok,
    ))
}

fn delete(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let id = r.param("task_id").to_owned();
    Ok(Reply::write(Op::on(caller, id, tasks::delete), Reply::ok))
}
