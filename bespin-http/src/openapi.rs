//! The OpenAPI 3.1 document, generated from the route table and the core's response types,
//! and the offline Swagger UI at `/docs`.
//!
//! Every operation has a stable `operationId` (given where the route is declared) and names the
//! credentials it needs as security requirements over four `apiKey` schemes: `TenantId`
//! (`X-Tenant-ID`), `UserId` (`X-User-ID`) and `ApiKey` (`X-API-Key`), all three together for
//! tenant routes, and `PlatformAdminKey` (`X-Platform-Admin-Key`) for the admin API. Tenant
//! routes also accept the alternative `BearerKey` (`Authorization: Bearer`, a user-bound key
//! alone). SDK generators turn those into client credentials instead of per-call parameters.

use crate::router::Route;
use std::sync::{Arc, OnceLock};
use utoipa::ToSchema;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, ObjectBuilder, OpenApi, OpenApiBuilder,
    PathsBuilder, Ref, RefOr, Required, ResponseBuilder,
};

/// Collects a type's schema (and the schemas it refers to) and returns a reference to it.
pub type SchemaFn = fn(&mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema>;

/// The schema of `T`, registered as a component.
pub fn schema<T: ToSchema>(deps: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    T::schemas(deps);
    deps.push((T::name().into_owned(), T::schema()));
    RefOr::Ref(Ref::from_schema_name(T::name()))
}

/// The schema of a list of `T`.
pub fn list_of<T: ToSchema>(deps: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    let item = schema::<T>(deps);
    RefOr::T(Schema::Array(
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(item)
            .build(),
    ))
}

/// Any JSON object.
pub fn any_object(_: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Object))
            .build(),
    ))
}

/// Which credentials a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// None.
    Open,
    /// `X-Tenant-ID`, `X-User-ID`, `X-API-Key`.
    Tenant,
    /// `X-Tenant-ID`, `X-User-ID`, `X-API-Key` and `Idempotency-Key`.
    TenantIdempotent,
    /// `X-Platform-Admin-Key`.
    PlatformAdmin,
    /// Not part of the JSON API (pages, assets).
    Hidden,
}

/// The documentation of one route.
#[derive(Clone, Copy)]
pub struct Doc {
    /// One-line summary.
    pub summary: &'static str,
    /// Grouping tag.
    pub tag: &'static str,
    /// Credentials.
    pub auth: Auth,
    /// Request body schema.
    pub body: Option<SchemaFn>,
    /// Success status and body schema.
    pub ok: (u16, Option<SchemaFn>),
    /// Query parameters (name, description).
    pub query: &'static [(&'static str, &'static str)],
    /// The `operationId` (`None` only for routes left out of the document).
    pub op: Option<&'static str>,
    /// Further request media types with their schemas (beside `application/json`'s `body`).
    pub body_as: &'static [(&'static str, SchemaFn)],
    /// The success body's media type.
    pub ok_as: &'static str,
    /// A `POST` that may only read (MCP): open to read-only keys, whose writes the core refuses.
    pub post_reads: bool,
}

impl Doc {
    /// A route of `tag` needing `auth`, answering 200 with no documented body.
    pub const fn new(tag: &'static str, summary: &'static str, auth: Auth) -> Doc {
        Doc {
            summary,
            tag,
            auth,
            body: None,
            ok: (200, None),
            query: &[],
            op: None,
            body_as: &[],
            ok_as: "application/json",
            post_reads: false,
        }
    }

    /// Also accepting these media types, each with its schema (CloudEvents' own types).
    pub const fn body_as(mut self, types: &'static [(&'static str, SchemaFn)]) -> Doc {
        self.body_as = types;
        self
    }

    /// With a success body of another media type than JSON's.
    pub const fn ok_as(mut self, status: u16, media: &'static str, f: SchemaFn) -> Doc {
        self.ok = (status, Some(f));
        self.ok_as = media;
        self
    }

    /// A `POST` route that may only read: read-only keys are not refused by its method.
    pub const fn post_reads(mut self) -> Doc {
        self.post_reads = true;
        self
    }

    /// With its `operationId`.
    pub const fn op(mut self, id: &'static str) -> Doc {
        self.op = Some(id);
        self
    }

    /// With a request body.
    pub const fn body(mut self, f: SchemaFn) -> Doc {
        self.body = Some(f);
        self
    }

    /// With a success status and body.
    pub const fn ok(mut self, status: u16, f: SchemaFn) -> Doc {
        self.ok = (status, Some(f));
        self
    }

    /// With query parameters.
    pub const fn query(mut self, q: &'static [(&'static str, &'static str)]) -> Doc {
        self.query = q;
        self
    }
}

fn header(name: &str, desc: &str) -> utoipa::openapi::path::Parameter {
    string_param(name, ParameterIn::Header, true, desc)
}

fn string_param(
    name: &str,
    place: ParameterIn,
    required: bool,
    desc: &str,
) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(place)
        .required(if required {
            Required::True
        } else {
            Required::False
        })
        .description(Some(desc))
        .schema(Some(RefOr::T(Schema::Object(
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::String))
                .build(),
        ))))
        .build()
}

/// Security scheme names.
const TENANT_ID: &str = "TenantId";
const USER_ID: &str = "UserId";
const API_KEY: &str = "ApiKey";
const PLATFORM_ADMIN_KEY: &str = "PlatformAdminKey";
const BEARER_KEY: &str = "BearerKey";
const NO_SCOPES: [&str; 0] = [];

/// Builds the document for `routes`.
pub fn document(routes: &[Route]) -> OpenApi {
    let mut deps = Vec::new();
    let mut paths = PathsBuilder::new();
    for r in routes {
        if r.doc.auth == Auth::Hidden {
            continue;
        }
        let mut op = OperationBuilder::new()
            .summary(Some(r.doc.summary))
            .operation_id(r.doc.op)
            .tag(r.doc.tag);
        match r.doc.auth {
            Auth::Tenant | Auth::TenantIdempotent => {
                op = op
                    .security(
                        SecurityRequirement::new(TENANT_ID, NO_SCOPES)
                            .add(USER_ID, NO_SCOPES)
                            .add(API_KEY, NO_SCOPES),
                    )
                    .security(SecurityRequirement::new(BEARER_KEY, NO_SCOPES));
                if r.doc.auth == Auth::TenantIdempotent {
                    op = op.parameter(header(
                        "Idempotency-Key",
                        "Retry key: a repeat with the same body replays the stored response",
                    ));
                }
            }
            Auth::PlatformAdmin => {
                op = op.security(SecurityRequirement::new(PLATFORM_ADMIN_KEY, NO_SCOPES))
            }
            Auth::Open | Auth::Hidden => {}
        }
        for seg in r.path.split('/') {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                op = op.parameter(string_param(
                    name,
                    ParameterIn::Path,
                    true,
                    "Path parameter",
                ));
            }
        }
        for (name, desc) in r.doc.query {
            op = op.parameter(string_param(name, ParameterIn::Query, false, desc));
        }
        if let Some(f) = r.doc.body {
            let content = ContentBuilder::new().schema(Some(f(&mut deps))).build();
            let mut body = RequestBodyBuilder::new()
                .content("application/json", content)
                .required(Some(Required::True));
            for (media, f) in r.doc.body_as {
                let content = ContentBuilder::new().schema(Some(f(&mut deps))).build();
                body = body.content(*media, content);
            }
            op = op.request_body(Some(body.build()));
        }
        let mut ok = ResponseBuilder::new().description("Success");
        if let Some(f) = r.doc.ok.1 {
            ok = ok.content(
                r.doc.ok_as,
                ContentBuilder::new().schema(Some(f(&mut deps))).build(),
            );
        }
        op = op.response(r.doc.ok.0.to_string(), ok.build()).response(
            "4XX",
            ResponseBuilder::new()
                .description("Error: {\"detail\": …}")
                .build(),
        );
        let method = match r.method.as_str() {
            "GET" => HttpMethod::Get,
            "POST" => HttpMethod::Post,
            "PUT" => HttpMethod::Put,
            "PATCH" => HttpMethod::Patch,
            "DELETE" => HttpMethod::Delete,
            _ => HttpMethod::Options,
        };
        paths = paths.path(r.path, PathItem::new(method, op.build()));
    }
    let mut components = ComponentsBuilder::new();
    for (name, header, description) in [
        (TENANT_ID, "X-Tenant-ID", "The tenant's id"),
        (
            USER_ID,
            "X-User-ID",
            "The acting user's id (a user of that tenant)",
        ),
        (API_KEY, "X-API-Key", "The tenant's API key (bsk_…)"),
        (
            PLATFORM_ADMIN_KEY,
            "X-Platform-Admin-Key",
            "The platform-admin key (PLATFORM_ADMIN_KEY)",
        ),
    ] {
        components = components.security_scheme(
            name,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                header,
                description,
            ))),
        );
    }
    components = components.security_scheme(
        BEARER_KEY,
        SecurityScheme::Http(
            utoipa::openapi::security::HttpBuilder::new()
                .scheme(utoipa::openapi::security::HttpAuthScheme::Bearer)
                .description(Some(
                    "A user-bound API key (POST /v1/api-keys) alone: no other header needed",
                ))
                .build(),
        ),
    );
    for (name, s) in deps {
        components = components.schema(name, s);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Bespin")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some("The multi-tenant AI co-founder backend: gateway, KPIs, briefs, chat, billing and the Core Business OS."))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components.build()))
        .build()
}

/// The served document as JSON text (built once).
pub fn json(routes: &[Route]) -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut v = serde_json::to_value(document(routes)).unwrap_or_default();
        v["openapi"] = serde_json::Value::String("3.1.0".into());
        v["components"]["schemas"]["EventType"] = event_types();
        v.to_string()
    })
}

/// A Swagger UI file for the path under `/docs/` (`""` for the page itself).
pub fn swagger_file(tail: &str) -> Option<(Vec<u8>, String)> {
    static CONFIG: OnceLock<Arc<utoipa_swagger_ui::Config<'static>>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| Arc::new(utoipa_swagger_ui::Config::from("/openapi.json")));
    let tail = if tail.is_empty() { "index.html" } else { tail };
    match utoipa_swagger_ui::serve(tail, config.clone()) {
        Ok(Some(f)) => Some((f.bytes.into_owned(), f.content_type)),
        _ => None,
    }
}

/// The catalogue of event types as a schema: the names as an enum, and each type's subject,
/// capability, audience and description under `x-catalogue` (the README's table is the same).
fn event_types() -> serde_json::Value {
    use bespin_core::events::catalog::ALL;
    let names: Vec<&str> = ALL.iter().map(|t| t.name).collect();
    let entries: Vec<serde_json::Value> = ALL
        .iter()
        .map(|t| {
            serde_json::json!({
                "type": t.name,
                "subject": t.subject,
                "capability": t.capability,
                "audience": t.audience.as_str(),
                "description": t.description,
            })
        })
        .collect();
    serde_json::json!({
        "type": "string",
        "description": "The type of an event (`GET /v1/events`, the stream, webhooks): dotted <noun>.<verb>. A caller sees a type when the tenant's plan grants its capability and the caller is in its audience (members: every user; owner: admins and the user concerned; admins: tenant admins).",
        "enum": names,
        "x-catalogue": entries,
    })
}
