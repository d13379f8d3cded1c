//! The OpenAPI 3.1 document of everything bookcal serves, at `GET /api/schema/`.
//!
//! Every response body is described by the very type the handler serialises (the
//! `#[derive(Serialize, ToSchema)]` shapes of [`super::render`] and the resource
//! modules), so a field cannot be rendered without being documented. Request bodies
//! are parsed by hand (to answer DRF-shaped 400s field by field), so they are
//! described here by schema-only structs. `tests/it/openapi.rs` validates real
//! responses against this document, refusing any field it does not name, and
//! snapshot-tests the document; CI runs schemathesis against a live server.
//!
//! Every operation the per-client limiter can refuse ([`super::throttle`]: all but
//! the probes and the scrape) has its 429 (DRF's `detail` and `Retry-After`), added
//! by [`Throttled`] rather than repeated on each declaration.
//!
//! The operations are declared here, one `#[utoipa::path]` per route, beside the
//! schemas rather than on the handlers, so that handler files stay free of
//! documentation churn; a test checks that every route in [`super::router`] is
//! documented and answers.

// The request-body structs are never built: they exist to describe what is parsed.
#![allow(dead_code)]

use std::collections::HashMap;

use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, ObjectBuilder, Ref, ResponseBuilder, Type};
use utoipa::{Modify, OpenApi, ToSchema};

use super::bookings::BookingOut;
use super::directory::{ApiRootOut, CategoryOut, CustomerOut, ProjectOut, UserOut};
use super::feed_tokens::FeedTokenOut;
use super::ops::{Health, Readiness};
use super::render::{
    AttachmentUrl, Detail, OfferingOut, OrderOut, OrderUuid, PublicOfferingOut, ResourceOut,
    StatusMessage,
};

/// A 400: a list of messages, or messages by field name (DRF's shapes).
#[derive(ToSchema)]
#[serde(untagged)]
pub enum BadRequest {
    Messages(Vec<String>),
    Fields(HashMap<String, serde_json::Value>),
}

/// A requested slot.
#[derive(ToSchema)]
pub struct ScheduleItem {
    #[schema(format = DateTime)]
    pub start: String,
    #[schema(format = DateTime)]
    pub end: String,
}

/// The booking attributes of a new order.
#[derive(ToSchema)]
pub struct OrderAttributes {
    pub name: Option<String>,
    pub schedules: Vec<ScheduleItem>,
}

/// A new order for a booking offering.
#[derive(ToSchema)]
pub struct OrderCreate {
    /// URL of the offering (`.../marketplace-public-offerings/<uuid>/`).
    pub offering: String,
    /// URL of the project (`.../projects/<uuid>/`).
    pub project: String,
    pub attributes: OrderAttributes,
    #[serde(rename = "type")]
    #[schema(example = "Create")]
    pub kind: Option<String>,
    pub request_comment: Option<String>,
    pub callback_url: Option<String>,
    #[schema(format = Date)]
    pub start_date: Option<String>,
}

/// `{"backend_id": "..."}`.
#[derive(ToSchema)]
pub struct BackendIdBody {
    pub backend_id: String,
}

/// An attachment upload (multipart).
#[derive(ToSchema)]
pub struct AttachmentUpload {
    #[schema(value_type = String, format = Binary)]
    pub attachment: Vec<u8>,
}

/// The body that creates a feed token.
#[derive(ToSchema)]
pub struct FeedTokenCreate {
    /// A label (up to 150 characters), e.g. "Reception screen".
    pub name: Option<String>,
}

struct TokenAuth;

impl Modify for TokenAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`Token <key>` (also accepted as the `x-auth-token` query parameter)",
            ))),
        );
    }
}

/// The per-client limiter's 429, a reusable response (`#/components/responses/Throttled`)
/// given to every operation except [`super::throttle::NEVER_COUNTED`]'s: anonymous
/// requests over their client's rate (and, on the token feeds, guessed tokens past it)
/// are refused whatever the operation.
struct Throttled;

impl Modify for Throttled {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let retry_after = HeaderBuilder::new()
            .schema(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1)),
            )
            .description(Some(
                "Whole seconds until the client's allowance has a request again (at least 1)",
            ))
            .build();
        let response = ResponseBuilder::new()
            .description(
                "Too many requests without credentials from this client (or guessed feed \
                 tokens); ask again after `Retry-After` seconds. A client that keeps asking \
                 has its answers held (`http.throttle_hold_ms`) and its connection closed.",
            )
            .header("Retry-After", retry_after)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Detail")))
                    .example(Some(serde_json::json!({
                        "detail": "Request was throttled. Expected available in 1 second."
                    })))
                    .build(),
            )
            .build();
        doc.components
            .get_or_insert_with(Default::default)
            .responses
            .insert("Throttled".to_owned(), response.into());
        for (path, item) in &mut doc.paths.paths {
            if super::throttle::NEVER_COUNTED.contains(&path.as_str()) {
                continue;
            }
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
                &mut item.options,
                &mut item.trace,
            ];
            for op in ops.into_iter().flatten() {
                op.responses.responses.insert(
                    "429".to_owned(),
                    Ref::from_response_name("Throttled").into(),
                );
            }
        }
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "bookcal",
        description = "The booking slice of the Waldur marketplace REST API, with Google Calendar sync.\n\nLists are bare JSON arrays with `page`/`page_size` (default 10, max 300), the `X-Result-Count` and `Link` headers and `HEAD`; `field=` picks fields and `o=` orders. UUIDs are accepted hex or dashed."
    ),
    modifiers(&TokenAuth, &Throttled),
    security(("token" = [])),
    paths(
        paths::offerings_list,
        paths::offerings_retrieve,
        paths::offerings_google_calendar_sync,
        paths::offerings_share_google_calendar,
        paths::offerings_unshare_google_calendar,
        paths::resources_list,
        paths::resources_retrieve,
        paths::resources_accept,
        paths::resources_reject,
        paths::resources_terminate,
        paths::orders_list,
        paths::orders_create,
        paths::orders_retrieve,
        paths::orders_destroy,
        paths::orders_offering,
        paths::orders_approve_by_consumer,
        paths::orders_approve_by_provider,
        paths::orders_reject_by_consumer,
        paths::orders_reject_by_provider,
        paths::orders_cancel,
        paths::orders_set_state_executing,
        paths::orders_set_state_done,
        paths::orders_set_state_erred,
        paths::orders_set_backend_id,
        paths::orders_unlink,
        paths::orders_update_attachment,
        paths::orders_delete_attachment,
        paths::orders_attachment,
        paths::bookings_list,
        paths::offering_feed_tokens_list,
        paths::offering_feed_tokens_create,
        paths::offering_feed_tokens_destroy,
        paths::my_feed_tokens_list,
        paths::my_feed_tokens_create,
        paths::my_feed_tokens_destroy,
        paths::public_feed,
        paths::token_feed,
        paths::health,
        paths::ready,
        paths::metrics,
        paths::schema,
        paths::api_root,
        paths::projects_list,
        paths::projects_retrieve,
        paths::customers_list,
        paths::customers_retrieve,
        paths::users_list,
        paths::users_retrieve,
        paths::public_offerings_list,
        paths::public_offerings_retrieve,
        paths::categories_list,
        paths::categories_retrieve,
    ),
    tags(
        (name = "booking-offerings"), (name = "booking-resources"),
        (name = "marketplace-orders"), (name = "marketplace-resources"), (name = "marketplace-bookings"), (name = "feeds"),
        (name = "operations"), (name = "directory")
    )
)]
pub struct ApiDoc;

/// The document as utoipa builds it.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as served: utoipa 5 serialises link objects with snake_case keys
/// (`operation_id`), which OpenAPI spells `operationId`; this fixes them.
pub fn document_json() -> serde_json::Value {
    let mut v = serde_json::to_value(document()).unwrap_or_default();
    if let Some(paths) = v.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for op in paths.values_mut().filter_map(|p| p.as_object_mut()) {
            for responses in op
                .values_mut()
                .filter_map(|o| o.get_mut("responses"))
                .filter_map(|r| r.as_object_mut())
            {
                for links in responses
                    .values_mut()
                    .filter_map(|r| r.get_mut("links"))
                    .filter_map(|l| l.as_object_mut())
                {
                    for link in links.values_mut().filter_map(|l| l.as_object_mut()) {
                        for (from, to) in [
                            ("operation_id", "operationId"),
                            ("operation_ref", "operationRef"),
                            ("request_body", "requestBody"),
                        ] {
                            if let Some(x) = link.remove(from) {
                                link.insert(to.to_owned(), x);
                            }
                        }
                    }
                }
            }
        }
    }
    v
}

/// The document rendered once per process.
static DOCUMENT_JSON: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| document_json().to_string());

/// `GET /api/schema/`.
pub async fn schema() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        DOCUMENT_JSON.as_str(),
    )
        .into_response()
}

/// Operation declarations (documentation only; the handlers live in the resource
/// modules and are routed in [`super::router`]).
mod paths {
    use super::*;

    /// Common query parameters of lists.
    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct Page {
        /// Page number, from 1.
        pub page: Option<u32>,
        /// Items per page (max 300).
        pub page_size: Option<u32>,
        /// Order by these fields (`-name` descending), comma-separated.
        pub o: Option<String>,
    }

    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct OfferingFilters {
        /// Name contains (case-insensitive).
        pub name: Option<String>,
        /// Provider organisation UUIDs, comma-separated.
        pub customer_uuid: Option<String>,
    }

    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct ResourceFilters {
        pub offering_uuid: Option<String>,
        pub offering: Option<String>,
        pub offering_slug: Option<String>,
        pub parent_offering_uuid: Option<String>,
        /// States, comma-separated (`Creating`, `OK`, `Erred`, `Terminating`, `Terminated`).
        pub state: Option<String>,
        pub customer_uuid: Option<String>,
        pub project_uuid: Option<String>,
        pub project_name: Option<String>,
        pub provider_uuid: Option<String>,
        pub connected_customer_uuid: Option<String>,
        pub category_uuid: Option<String>,
        pub query: Option<String>,
        pub name: Option<String>,
        pub name_exact: Option<String>,
        pub backend_id: Option<String>,
        pub created: Option<String>,
        pub modified: Option<String>,
    }

    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct OrderFilters {
        pub offering_uuid: Option<String>,
        pub offering: Option<String>,
        pub offering_slug: Option<String>,
        pub parent_offering_uuid: Option<String>,
        pub state: Option<String>,
        pub r#type: Option<String>,
        pub customer_uuid: Option<String>,
        pub project_uuid: Option<String>,
        pub provider_uuid: Option<String>,
        pub category_uuid: Option<String>,
        pub resource: Option<String>,
        pub resource_uuid: Option<String>,
        pub query: Option<String>,
        pub can_approve_as_consumer: Option<bool>,
        pub can_approve_as_provider: Option<bool>,
        pub created: Option<String>,
        pub modified: Option<String>,
    }

    #[utoipa::path(get, path = "/api/booking-offerings/", tag = "booking-offerings",
        params(Page, OfferingFilters),
        responses(
            (status = 200, body = Vec<OfferingOut>,
                links(("offerings_retrieve" = (operation_id = "offerings_retrieve", parameters(("uuid" = "$response.body#/0/uuid")))), ("offerings_google_calendar_sync" = (operation_id = "offerings_google_calendar_sync", parameters(("uuid" = "$response.body#/0/uuid")))), ("offerings_share_google_calendar" = (operation_id = "offerings_share_google_calendar", parameters(("uuid" = "$response.body#/0/uuid")))), ("offerings_unshare_google_calendar" = (operation_id = "offerings_unshare_google_calendar", parameters(("uuid" = "$response.body#/0/uuid")))), ("bookings_list" = (operation_id = "bookings_list", parameters(("uuid" = "$response.body#/0/uuid"))))),
                headers(
                ("X-Result-Count" = u64, description = "Items in all pages"),
                ("Link" = String, description = "first/prev/next/last page links"))),
            (status = 400, body = BadRequest), (status = 401, body = Detail), (status = 404, description = "Invalid page", body = Detail)))]
    pub fn offerings_list() {}

    #[utoipa::path(get, path = "/api/booking-offerings/{uuid}/", tag = "booking-offerings",
        params(("uuid" = String, Path)),
        responses((status = 200, body = OfferingOut), (status = 401, body = Detail), (status = 404, body = Detail)))]
    pub fn offerings_retrieve() {}

    macro_rules! calendar_action {
        ($name:ident, $path:literal) => {
            #[utoipa::path(post, path = $path, tag = "booking-offerings",
                            params(("uuid" = String, Path)),
                            responses(
                                (status = 200, description = "The job is queued", body = Detail),
                                (status = 400, body = BadRequest), (status = 401, body = Detail),
                                (status = 403, body = Detail), (status = 404, body = Detail),
                                (status = 409, body = Detail)))]
            pub fn $name() {}
        };
    }
    calendar_action!(
        offerings_google_calendar_sync,
        "/api/booking-offerings/{uuid}/google_calendar_sync/"
    );
    calendar_action!(
        offerings_share_google_calendar,
        "/api/booking-offerings/{uuid}/share_google_calendar/"
    );
    calendar_action!(
        offerings_unshare_google_calendar,
        "/api/booking-offerings/{uuid}/unshare_google_calendar/"
    );

    #[utoipa::path(get, path = "/api/booking-resources/", tag = "booking-resources",
        params(Page, ResourceFilters),
        responses(
            (status = 200, body = Vec<ResourceOut>,
                links(("resources_retrieve" = (operation_id = "resources_retrieve", parameters(("uuid" = "$response.body#/0/uuid")))), ("resources_accept" = (operation_id = "resources_accept", parameters(("uuid" = "$response.body#/0/uuid")))), ("resources_reject" = (operation_id = "resources_reject", parameters(("uuid" = "$response.body#/0/uuid"))))),
                headers(
                ("X-Result-Count" = u64, description = "Items in all pages"),
                ("Link" = String, description = "first/prev/next/last page links"))),
            (status = 400, body = BadRequest), (status = 401, body = Detail), (status = 404, description = "Invalid page", body = Detail)))]
    pub fn resources_list() {}

    #[utoipa::path(get, path = "/api/booking-resources/{uuid}/", tag = "booking-resources",
        params(("uuid" = String, Path)),
        responses((status = 200, body = ResourceOut), (status = 401, body = Detail), (status = 404, body = Detail)))]
    pub fn resources_retrieve() {}

    macro_rules! resource_decision {
        ($name:ident, $path:literal) => {
            #[utoipa::path(post, path = $path, tag = "booking-resources",
                            params(("uuid" = String, Path)),
                            responses(
                                (status = 200, body = OrderUuid),
                                (status = 400, body = BadRequest), (status = 401, body = Detail),
                                (status = 403, body = Detail), (status = 404, body = Detail),
                                (status = 409, body = Detail)))]
            pub fn $name() {}
        };
    }
    resource_decision!(resources_accept, "/api/booking-resources/{uuid}/accept/");
    resource_decision!(resources_reject, "/api/booking-resources/{uuid}/reject/");

    /// Terminates an accepted booking: a Terminate order completed at once, the
    /// resource `Terminated`, its time free.
    #[utoipa::path(post, path = "/api/marketplace-resources/{uuid}/terminate/",
                    tag = "marketplace-resources",
                    params(("uuid" = String, Path)),
                    responses(
                        (status = 200, body = OrderUuid),
                        (status = 401, body = Detail), (status = 403, body = Detail),
                        (status = 404, body = Detail), (status = 409, body = Detail)))]
    pub fn resources_terminate() {}

    #[utoipa::path(get, path = "/api/marketplace-orders/", tag = "marketplace-orders",
        params(Page, OrderFilters),
        responses(
            (status = 200, body = Vec<OrderOut>,
                links(("orders_retrieve" = (operation_id = "orders_retrieve", parameters(("uuid" = "$response.body#/0/uuid")))), ("orders_destroy" = (operation_id = "orders_destroy", parameters(("uuid" = "$response.body#/0/uuid")))), ("orders_offering" = (operation_id = "orders_offering", parameters(("uuid" = "$response.body#/0/uuid")))), ("orders_approve_by_consumer" = (operation_id = "orders_approve_by_consumer", parameters(("uuid" = "$response.body#/0/uuid")))), ("orders_approve_by_provider" = (operation_id = "orders_approve_by_provider", parameters(("uuid" = "$response.body#/0/uuid")))), ("orders_reject_by_consumer" = (operation_id = "orders_reject_by_consumer", parameters(("uuid" = "$response.body#/0/uuid")))), ("orders_reject_by_provider" = (operation_id = "orders_reject_by_provider", parameters(("uuid" = "$response.body#/0/uuid")))), ("orders_cancel" = (operation_id = "orders_cancel", parameters(("uuid" = "$response.body#/0/uuid")))), ("orders_set_state_executing" = (operation_id = "orders_set_state_executing", parameters(("uuid" = "$response.body#/0/uuid")))), ("orders_set_state_done" = (operation_id = "orders_set_state_done", parameters(("uuid" = "$response.body#/0/uuid")))), ("orders_set_state_erred" = (operation_id = "orders_set_state_erred", parameters(("uuid" = "$response.body#/0/uuid")))), ("orders_set_backend_id" = (operation_id = "orders_set_backend_id", parameters(("uuid" = "$response.body#/0/uuid")))), ("orders_unlink" = (operation_id = "orders_unlink", parameters(("uuid" = "$response.body#/0/uuid")))), ("orders_update_attachment" = (operation_id = "orders_update_attachment", parameters(("uuid" = "$response.body#/0/uuid")))), ("orders_delete_attachment" = (operation_id = "orders_delete_attachment", parameters(("uuid" = "$response.body#/0/uuid")))), ("orders_attachment" = (operation_id = "orders_attachment", parameters(("uuid" = "$response.body#/0/uuid"))))),
                headers(
                ("X-Result-Count" = u64, description = "Items in all pages"),
                ("Link" = String, description = "first/prev/next/last page links"))),
            (status = 400, body = BadRequest), (status = 401, body = Detail), (status = 404, description = "Invalid page", body = Detail)))]
    pub fn orders_list() {}

    #[utoipa::path(post, path = "/api/marketplace-orders/", tag = "marketplace-orders",
        request_body = OrderCreate,
        responses(
            (status = 201, body = OrderOut,
                links(("orders_retrieve" = (operation_id = "orders_retrieve", parameters(("uuid" = "$response.body#/uuid")))), ("orders_destroy" = (operation_id = "orders_destroy", parameters(("uuid" = "$response.body#/uuid")))), ("orders_offering" = (operation_id = "orders_offering", parameters(("uuid" = "$response.body#/uuid")))), ("orders_approve_by_consumer" = (operation_id = "orders_approve_by_consumer", parameters(("uuid" = "$response.body#/uuid")))), ("orders_approve_by_provider" = (operation_id = "orders_approve_by_provider", parameters(("uuid" = "$response.body#/uuid")))), ("orders_reject_by_consumer" = (operation_id = "orders_reject_by_consumer", parameters(("uuid" = "$response.body#/uuid")))), ("orders_reject_by_provider" = (operation_id = "orders_reject_by_provider", parameters(("uuid" = "$response.body#/uuid")))), ("orders_cancel" = (operation_id = "orders_cancel", parameters(("uuid" = "$response.body#/uuid")))), ("orders_set_state_executing" = (operation_id = "orders_set_state_executing", parameters(("uuid" = "$response.body#/uuid")))), ("orders_set_state_done" = (operation_id = "orders_set_state_done", parameters(("uuid" = "$response.body#/uuid")))), ("orders_set_state_erred" = (operation_id = "orders_set_state_erred", parameters(("uuid" = "$response.body#/uuid")))), ("orders_set_backend_id" = (operation_id = "orders_set_backend_id", parameters(("uuid" = "$response.body#/uuid")))), ("orders_unlink" = (operation_id = "orders_unlink", parameters(("uuid" = "$response.body#/uuid")))), ("orders_update_attachment" = (operation_id = "orders_update_attachment", parameters(("uuid" = "$response.body#/uuid")))), ("orders_delete_attachment" = (operation_id = "orders_delete_attachment", parameters(("uuid" = "$response.body#/uuid")))), ("orders_attachment" = (operation_id = "orders_attachment", parameters(("uuid" = "$response.body#/uuid")))), ("resources_retrieve" = (operation_id = "resources_retrieve", parameters(("uuid" = "$response.body#/marketplace_resource_uuid")))), ("resources_accept" = (operation_id = "resources_accept", parameters(("uuid" = "$response.body#/marketplace_resource_uuid")))), ("resources_reject" = (operation_id = "resources_reject", parameters(("uuid" = "$response.body#/marketplace_resource_uuid")))))),
            (status = 400, body = BadRequest), (status = 401, body = Detail),
            (status = 403, body = Detail), (status = 413, body = Detail)))]
    pub fn orders_create() {}

    #[utoipa::path(get, path = "/api/marketplace-orders/{uuid}/", tag = "marketplace-orders",
        params(("uuid" = String, Path)),
        responses((status = 200, body = OrderOut), (status = 401, body = Detail), (status = 404, body = Detail)))]
    pub fn orders_retrieve() {}

    #[utoipa::path(delete, path = "/api/marketplace-orders/{uuid}/", tag = "marketplace-orders",
        params(("uuid" = String, Path)),
        responses(
            (status = 204, description = "Deleted"), (status = 401, body = Detail),
            (status = 403, body = Detail), (status = 404, body = Detail), (status = 409, body = Detail)))]
    pub fn orders_destroy() {}

    #[utoipa::path(get, path = "/api/marketplace-orders/{uuid}/offering/", tag = "marketplace-orders",
        params(("uuid" = String, Path)),
        responses((status = 200, body = PublicOfferingOut), (status = 401, body = Detail), (status = 404, body = Detail)))]
    pub fn orders_offering() {}

    macro_rules! order_action {
        ($name:ident, $path:literal, $ok:literal) => {
            #[utoipa::path(post, path = $path, tag = "marketplace-orders",
                            params(("uuid" = String, Path)),
                            responses(
                                (status = $ok, body = Detail),
                                (status = 400, body = BadRequest), (status = 401, body = Detail),
                                (status = 403, body = Detail), (status = 404, body = Detail),
                                (status = 409, body = Detail), (status = 413, body = Detail)))]
            pub fn $name() {}
        };
    }
    order_action!(
        orders_approve_by_consumer,
        "/api/marketplace-orders/{uuid}/approve_by_consumer/",
        200
    );
    order_action!(
        orders_approve_by_provider,
        "/api/marketplace-orders/{uuid}/approve_by_provider/",
        200
    );
    order_action!(
        orders_reject_by_consumer,
        "/api/marketplace-orders/{uuid}/reject_by_consumer/",
        200
    );
    order_action!(
        orders_reject_by_provider,
        "/api/marketplace-orders/{uuid}/reject_by_provider/",
        200
    );
    order_action!(orders_cancel, "/api/marketplace-orders/{uuid}/cancel/", 202);
    order_action!(
        orders_set_state_executing,
        "/api/marketplace-orders/{uuid}/set_state_executing/",
        200
    );
    order_action!(
        orders_set_state_done,
        "/api/marketplace-orders/{uuid}/set_state_done/",
        200
    );
    order_action!(
        orders_set_state_erred,
        "/api/marketplace-orders/{uuid}/set_state_erred/",
        200
    );

    #[utoipa::path(post, path = "/api/marketplace-orders/{uuid}/set_backend_id/", tag = "marketplace-orders",
        params(("uuid" = String, Path)),
        request_body = BackendIdBody,
        responses(
            (status = 200, body = StatusMessage),
            (status = 400, body = BadRequest), (status = 401, body = Detail),
            (status = 403, body = Detail), (status = 404, body = Detail), (status = 413, body = Detail)))]
    pub fn orders_set_backend_id() {}

    #[utoipa::path(post, path = "/api/marketplace-orders/{uuid}/unlink/", tag = "marketplace-orders",
        params(("uuid" = String, Path)),
        responses(
            (status = 204, description = "Unlinked (staff only)"), (status = 401, body = Detail),
            (status = 403, body = Detail), (status = 404, body = Detail)))]
    pub fn orders_unlink() {}

    #[utoipa::path(post, path = "/api/marketplace-orders/{uuid}/update_attachment/", tag = "marketplace-orders",
        params(("uuid" = String, Path)),
        request_body(content = AttachmentUpload, content_type = "multipart/form-data"),
        responses(
            (status = 200, body = AttachmentUrl),
            (status = 400, body = BadRequest), (status = 401, body = Detail),
            (status = 403, body = Detail), (status = 404, body = Detail),
            (status = 413, body = Detail), (status = 415, body = Detail)))]
    pub fn orders_update_attachment() {}

    #[utoipa::path(post, path = "/api/marketplace-orders/{uuid}/delete_attachment/", tag = "marketplace-orders",
        params(("uuid" = String, Path)),
        responses(
            (status = 204, description = "Deleted"), (status = 401, body = Detail),
            (status = 403, body = Detail), (status = 404, body = Detail)))]
    pub fn orders_delete_attachment() {}

    #[utoipa::path(get, path = "/api/marketplace-orders/{uuid}/attachment/", tag = "marketplace-orders",
        params(("uuid" = String, Path)),
        responses(
            (status = 200, description = "The uploaded file", content_type = "application/octet-stream"),
            (status = 401, body = Detail), (status = 404, body = Detail)))]
    pub fn orders_attachment() {}

    #[utoipa::path(get, path = "/api/marketplace-bookings/{uuid}/", tag = "marketplace-bookings",
        params(("uuid" = String, Path, description = "The offering")),
        responses((status = 200, body = Vec<BookingOut>), (status = 401, body = Detail), (status = 404, body = Detail)))]
    pub fn bookings_list() {}

    #[utoipa::path(get, path = "/api/booking-offerings/{uuid}/feed_tokens/", tag = "feeds",
        params(("uuid" = String, Path, description = "The offering")),
        responses((status = 200, body = Vec<FeedTokenOut>), (status = 401, body = Detail),
            (status = 403, body = Detail), (status = 404, body = Detail)))]
    pub fn offering_feed_tokens_list() {}

    #[utoipa::path(post, path = "/api/booking-offerings/{uuid}/feed_tokens/", tag = "feeds",
        params(("uuid" = String, Path, description = "The offering")),
        request_body = FeedTokenCreate,
        responses((status = 201, description = "Created; `url` holds the secret, shown only now", body = FeedTokenOut),
            (status = 400, body = BadRequest), (status = 401, body = Detail),
            (status = 403, body = Detail), (status = 404, body = Detail)))]
    pub fn offering_feed_tokens_create() {}

    #[utoipa::path(delete, path = "/api/booking-offerings/{uuid}/feed_tokens/{token_uuid}/", tag = "feeds",
        params(("uuid" = String, Path, description = "The offering"), ("token_uuid" = String, Path)),
        responses((status = 204, description = "Revoked: the feed answers 404 from now on"),
            (status = 401, body = Detail), (status = 403, body = Detail), (status = 404, body = Detail)))]
    pub fn offering_feed_tokens_destroy() {}

    #[utoipa::path(get, path = "/api/feed-tokens/", tag = "feeds",
        responses((status = 200, description = "The caller's own \"my bookings\" feed tokens", body = Vec<FeedTokenOut>),
            (status = 401, body = Detail)))]
    pub fn my_feed_tokens_list() {}

    #[utoipa::path(post, path = "/api/feed-tokens/", tag = "feeds",
        request_body = FeedTokenCreate,
        responses((status = 201, description = "Created; `url` holds the secret, shown only now", body = FeedTokenOut),
            (status = 400, body = BadRequest), (status = 401, body = Detail)))]
    pub fn my_feed_tokens_create() {}

    #[utoipa::path(delete, path = "/api/feed-tokens/{token_uuid}/", tag = "feeds",
        params(("token_uuid" = String, Path)),
        responses((status = 204, description = "Revoked"), (status = 401, body = Detail), (status = 404, body = Detail)))]
    pub fn my_feed_tokens_destroy() {}

    #[utoipa::path(get, path = "/feeds/offerings/{file}", tag = "feeds", security(()),
        params(("file" = String, Path, description = "`<offering uuid>.ics`"),
            ("from" = Option<String>, Query, description = "Window start: a date or RFC 3339, widened to the UTC day, at most a year back (default: 30 days ago)"),
            ("to" = Option<String>, Query, description = "Window end: a date or RFC 3339, widened to the UTC day, at most three years ahead (default: 2 years ahead)")),
        responses(
            (status = 200, description = "The public busy-only feed (while the calendar is shared)", content_type = "text/calendar", body = String),
            (status = 304, description = "Not modified (If-None-Match / If-Modified-Since)"),
            (status = 400, description = "A malformed window", body = BadRequest),
            (status = 404, description = "No such offering, or its calendar is not shared", body = Detail),
            (status = 503, description = "Not rendered yet and the store failed; retry later", body = Detail)))]
    pub fn public_feed() {}

    #[utoipa::path(get, path = "/feeds/t/{file}", tag = "feeds", security(()),
        params(("file" = String, Path, description = "`<secret token>.ics`"),
            ("from" = Option<String>, Query, description = "Window start: a date or RFC 3339"),
            ("to" = Option<String>, Query, description = "Window end: a date or RFC 3339")),
        responses(
            (status = 200, description = "An owner feed or a \"my bookings\" feed", content_type = "text/calendar", body = String),
            (status = 304, description = "Not modified"),
            (status = 400, description = "A malformed window", body = BadRequest),
            (status = 404, description = "Unknown or revoked token", body = Detail),
            (status = 503, description = "Not rendered yet and the store failed; retry later", body = Detail)))]
    pub fn token_feed() {}

    #[utoipa::path(get, path = "/health", tag = "operations", security(()),
        responses((status = 200, description = "The process is up", body = Health)))]
    pub fn health() {}

    #[utoipa::path(get, path = "/ready", tag = "operations", security(()),
        responses(
            (status = 200, description = "The store answers and the scheduler runs", body = Readiness),
            (status = 503, description = "Not ready; `reason` says why", body = Readiness)))]
    pub fn ready() {}

    #[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
        responses((status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain", body = String)))]
    pub fn metrics() {}

    #[utoipa::path(get, path = "/api/schema/", tag = "operations", security(()),
        responses((status = 200, description = "This document (OpenAPI 3.1, JSON)", body = Object)))]
    pub fn schema() {}

    #[utoipa::path(get, path = "/api/", tag = "directory", security(()),
        responses((status = 200, description = "Every collection by name (the API root)", body = ApiRootOut)))]
    pub fn api_root() {}

    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct NameFilters {
        /// Name contains (case-insensitive).
        pub name: Option<String>,
        /// Organisation UUIDs, comma-separated.
        pub customer_uuid: Option<String>,
    }

    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct TitleFilter {
        /// Title contains (case-insensitive).
        pub title: Option<String>,
    }

    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct UserFilters {
        /// Username contains (case-insensitive).
        pub username: Option<String>,
        /// Full name contains (case-insensitive).
        pub full_name: Option<String>,
    }

    macro_rules! directory {
        ($list:ident, $retrieve:ident, $path:literal, $item:literal, $body:ty, $filters:ty) => {
            #[utoipa::path(get, path = $path, tag = "directory",
                params(Page, $filters),
                responses(
                    (status = 200, body = Vec<$body>,
                        headers(
                        ("X-Result-Count" = u64, description = "Items in all pages"),
                        ("Link" = String, description = "first/prev/next/last page links"))),
                    (status = 400, body = BadRequest), (status = 401, body = Detail), (status = 404, description = "Invalid page", body = Detail)))]
            pub fn $list() {}

            #[utoipa::path(get, path = $item, tag = "directory",
                params(("uuid" = String, Path)),
                responses((status = 200, body = $body), (status = 401, body = Detail), (status = 404, body = Detail)))]
            pub fn $retrieve() {}
        };
    }
    directory!(
        projects_list,
        projects_retrieve,
        "/api/projects/",
        "/api/projects/{uuid}/",
        ProjectOut,
        NameFilters
    );
    directory!(
        customers_list,
        customers_retrieve,
        "/api/customers/",
        "/api/customers/{uuid}/",
        CustomerOut,
        NameFilters
    );
    directory!(
        users_list,
        users_retrieve,
        "/api/users/",
        "/api/users/{uuid}/",
        UserOut,
        UserFilters
    );
    directory!(
        public_offerings_list,
        public_offerings_retrieve,
        "/api/marketplace-public-offerings/",
        "/api/marketplace-public-offerings/{uuid}/",
        PublicOfferingOut,
        NameFilters
    );
    directory!(
        categories_list,
        categories_retrieve,
        "/api/marketplace-categories/",
        "/api/marketplace-categories/{uuid}/",
        CategoryOut,
        TitleFilter
    );
}
