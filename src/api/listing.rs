//! Waldur list conventions: repeated or comma-separated query keys, `page` /
//! `page_size`, `field=`, `o=`, the `Link` and `X-Result-Count` headers, HEAD.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};

use super::auth::{Caller, Roles};
use super::error::ApiError;
use super::{AppState, BaseUrl};
use crate::domain::Id;

/// Default and maximum page sizes (DRF settings of upstream Waldur).
pub const DEFAULT_PAGE_SIZE: usize = 10;
pub const MAX_PAGE_SIZE: usize = 300;

/// The query string as ordered pairs, keeping repeated keys.
#[derive(Clone, Debug, Default)]
pub struct Params {
    pub pairs: Vec<(String, String)>,
}

impl Params {
    pub fn parse(raw: Option<&str>) -> Params {
        Params {
            pairs: raw
                .map(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Every value of `key`, repeated keys and comma-separated lists flattened;
    /// empty values dropped (DRF ignores `?state=`).
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// The last non-empty value of `key`.
    pub fn one(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// UUID filter values; a malformed one is a 400 naming the key.
    pub fn uuids(&self, key: &str) -> Result<Option<Vec<Id>>, ApiError> {
        let vals = self.all(key);
        if vals.is_empty() {
            return Ok(None);
        }
        vals.into_iter()
            .map(|v| {
                Id::parse(v)
                    .ok_or_else(|| ApiError::field(key, format!("“{v}” is not a valid UUID.")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// Values of a choice filter (`state=`, `type=`); an unknown one is DRF's choice
    /// error naming the key.
    pub fn choices<T>(
        &self,
        key: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<Vec<T>>, ApiError> {
        let vals = self.all(key);
        if vals.is_empty() {
            return Ok(None);
        }
        vals.into_iter()
            .map(|v| {
                parse(v).ok_or_else(|| {
                    ApiError::field(
                        key,
                        format!("Select a valid choice. {v} is not one of the available choices."),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// Ids from `uuid_key` values and from a `url_key` hyperlink.
    ///
    /// # Errors
    /// A malformed UUID or hyperlink, naming its key.
    pub fn linked_ids(&self, uuid_key: &str, url_key: &str) -> Result<Option<Vec<Id>>, ApiError> {
        let mut ids = self.uuids(uuid_key)?;
        if let Some(u) = self.one(url_key) {
            let id =
                id_from_url(u).ok_or_else(|| ApiError::field(url_key, "Invalid hyperlink."))?;
            ids.get_or_insert_with(Vec::new).push(id);
        }
        Ok(ids)
    }

    pub fn boolean(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.one(key) {
            None => Ok(None),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(Some(true)),
                "false" | "0" | "no" => Ok(Some(false)),
                _ => Err(ApiError::field(key, "Enter a valid boolean.")),
            },
        }
    }

    /// A datetime filter (`created`, `modified`: "after"; `created_before`,
    /// `modified_before`), in the forms Django's `DateTimeField` accepts (see
    /// [`parse_django_datetime`]).
    pub fn datetime(&self, key: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        let Some(v) = self.one(key) else {
            return Ok(None);
        };
        parse_django_datetime(v)
            .map(Some)
            .ok_or_else(|| ApiError::field(key, "Enter a valid date/time."))
    }

    /// The `o=` keys, each (without its `-`) one of `allowed`; else DRF's choice
    /// error, as every Waldur list answers an unknown ordering.
    pub fn ordering_in(&self, allowed: &[&str]) -> Result<Vec<&str>, ApiError> {
        let keys = self.ordering();
        match keys
            .iter()
            .find(|k| !allowed.contains(&k.trim_start_matches('-')))
        {
            Some(bad) => Err(ApiError::field(
                "o",
                format!("Select a valid choice. {bad} is not one of the available choices."),
            )),
            None => Ok(keys),
        }
    }

    /// The `o=` keys as store order keys, each with whether it is descending (`-`);
    /// `keys` names every accepted key (`None`: accepted, but it does not reorder).
    ///
    /// # Errors
    /// A key not in `keys`, as a field error on `o`.
    pub fn order_keys<K: Copy>(
        &self,
        keys: &[(&str, Option<K>)],
    ) -> Result<Vec<(K, bool)>, ApiError> {
        let names: Vec<&str> = keys.iter().map(|(n, _)| *n).collect();
        Ok(self
            .ordering_in(&names)?
            .into_iter()
            .filter_map(|k| {
                let (name, desc) = match k.strip_prefix('-') {
                    Some(n) => (n, true),
                    None => (k, false),
                };
                keys.iter()
                    .find(|(n, _)| *n == name)
                    .and_then(|(_, key)| *key)
                    .map(|key| (key, desc))
            })
            .collect())
    }

    pub fn fields(&self) -> Vec<&str> {
        self.all("field")
    }

    pub fn ordering(&self) -> Vec<&str> {
        self.all("o")
    }

    /// `page` (1-based) and `page_size` (default 10, capped at 300). A page that is
    /// not a positive integer is a 404 `Invalid page.` like DRF.
    pub fn page(&self) -> Result<(usize, usize), ApiError> {
        let page = match self.one("page") {
            None => 1,
            Some(p) => match p.parse::<usize>() {
                Ok(n) if n >= 1 => n,
                _ => return Err(ApiError::InvalidPage),
            },
        };
        let size = match self.one("page_size").map(str::parse::<usize>) {
            Some(Ok(n)) if n >= 1 => n.min(MAX_PAGE_SIZE),
            _ => DEFAULT_PAGE_SIZE,
        };
        Ok((page, size))
    }
}

/// Parses a datetime as Django's `DateTimeField` does: a date (`2024-05-01`, meaning
/// its midnight), or a date and a time separated by `T` or a space, with optional
/// seconds and fraction (`.` or `,`), and an optional zone `Z`, `+01`, `+0100` or
/// `+01:00` (also after a space, and with the space a `+` becomes in an unencoded
/// query). A value without a zone is UTC (Waldur's zone).
pub fn parse_django_datetime(v: &str) -> Option<DateTime<Utc>> {
    let v = v.trim();
    let Some(sep) = v.find(['T', ' ']) else {
        let d = NaiveDate::parse_from_str(v, "%Y-%m-%d").ok()?;
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    };
    let (date, rest) = (&v[..sep], v[sep + 1..].trim());
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    // Split off the zone: `Z`, or a sign (or the space a `+` decodes to) and digits.
    let (time, offset_secs) = if let Some(t) = rest.strip_suffix('Z') {
        (t.trim_end(), 0)
    } else if let Some(pos) = rest.rfind(['+', '-', ' ']) {
        let (t, z) = (&rest[..pos], &rest[pos..]);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let digits: String = z[1..].chars().filter(|c| *c != ':').collect();
        if !digits.bytes().all(|b| b.is_ascii_digit()) || z[1..].matches(':').count() > 1 {
            return None;
        }
        let (h, m) = match digits.len() {
            2 => (digits.parse::<i32>().ok()?, 0),
            4 => (
                digits[..2].parse::<i32>().ok()?,
                digits[2..].parse::<i32>().ok()?,
            ),
            _ => return None,
        };
        if h > 23 || m > 59 {
            return None;
        }
        (t.trim_end(), sign * (h * 3600 + m * 60))
    } else {
        (rest, 0)
    };
    let time = time.replace(',', ".");
    let naive = ["%H:%M:%S%.f", "%H:%M"]
        .iter()
        .find_map(|f| chrono::NaiveTime::parse_from_str(&time, f).ok())?;
    let local = date.and_time(naive);
    let offset = chrono::FixedOffset::east_opt(offset_secs)?;
    local
        .and_local_timezone(offset)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

/// The last UUID-looking path segment of a hyperlink (`.../offerings/<uuid>/`).
pub fn id_from_url(s: &str) -> Option<Id> {
    s.trim_end_matches('/')
        .rsplit('/')
        .next()
        .and_then(Id::parse)
}

/// The type every booking offering has (the `offering_type` filters match it).
pub const BOOKING_OFFERING_TYPE: &str = "Marketplace.Booking";

/// The filters orders and booking resources share: the offering's
/// ([`offering_filter`]), `customer_uuid` and `customer` (hyperlink of the project's
/// customer), `project_uuid`, `provider_uuid`, `created` and `modified` (from),
/// `created_before` and `modified_before` (inclusive), `offering_type`, and
/// `service_manager_uuid` (bookings of shared offerings whose provider the user owns
/// or manages).
///
/// # Errors
/// A malformed hyperlink, UUID or datetime, naming its key.
pub fn booking_filter(p: &Params) -> Result<crate::store::query::BookingFilter, ApiError> {
    let types = p.all("offering_type");
    let mut customer = p.uuids("customer_uuid")?;
    if let Some(u) = p.one("customer") {
        let c = id_from_url(u).ok_or_else(|| ApiError::field("customer", "Invalid hyperlink."))?;
        customer = Some(match customer {
            None => vec![c],
            Some(v) => v.into_iter().filter(|x| *x == c).collect(),
        });
    }
    let service_manager = match p.uuids("service_manager_uuid")? {
        Some(ids) => ids.into_iter().next_back(),
        None => None,
    };
    Ok(crate::store::query::BookingFilter {
        offering: offering_filter(p)?,
        customer,
        project: p.uuids("project_uuid")?,
        provider: p.uuids("provider_uuid")?,
        created_after: p.datetime("created")?,
        created_before: p.datetime("created_before")?,
        modified_after: p.datetime("modified")?,
        modified_before: p.datetime("modified_before")?,
        service_manager,
        nothing: !types.is_empty() && !types.contains(&BOOKING_OFFERING_TYPE),
    })
}

/// The offering filters resources and orders share: `offering_uuid`, `offering`
/// (hyperlink), `parent_offering_uuid`, `offering_slug`, `category_uuid`.
///
/// # Errors
/// A malformed UUID or hyperlink, naming its key.
pub fn offering_filter(p: &Params) -> Result<crate::store::query::OfferingFilter, ApiError> {
    let mut ids = p.linked_ids("offering_uuid", "offering")?;
    if let Some(more) = p.uuids("parent_offering_uuid")? {
        ids.get_or_insert_with(Vec::new).extend(more);
    }
    Ok(crate::store::query::OfferingFilter {
        ids,
        slugs: p
            .all("offering_slug")
            .into_iter()
            .map(String::from)
            .collect(),
        categories: p.uuids("category_uuid")?,
    })
}

/// Keeps only the requested fields of a rendered object (unknown names ignored; when
/// none of them is known, the whole object).
pub fn select_fields(obj: Value, fields: &[&str]) -> Value {
    if fields.is_empty() {
        return obj;
    }
    match obj {
        Value::Object(map) => {
            if !fields.iter().any(|f| map.contains_key(*f)) {
                return Value::Object(map);
            }
            let mut out = Map::new();
            for (k, v) in map {
                if fields.contains(&k.as_str()) {
                    out.insert(k, v);
                }
            }
            Value::Object(out)
        }
        other => other,
    }
}

/// What every list handler starts from, read in this order: the caller (401 first),
/// the page asked for (`page`, `page_size`: 400), the caller's roles. Then the handler
/// builds its query with [`ListRequest::rows`], checks the page and gets its `Link`
/// with [`ListRequest::link`], and answers with [`ListRequest::respond`].
pub struct ListRequest {
    pub params: Params,
    pub roles: Roles,
    /// The service's base URL as the client sees it.
    pub base: String,
    page: usize,
    size: usize,
}

impl FromRequestParts<AppState> for ListRequest {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let BaseUrl(base) = BaseUrl::from_request_parts(parts, state).await?;
        let params = Params::parse(parts.uri.query());
        let (page, size) = params.page()?;
        let roles = Roles::load(&state.store, &caller.user).await?;
        Ok(ListRequest {
            params,
            roles,
            base,
            page,
            size,
        })
    }
}

impl ListRequest {
    /// The rows the store reads for this page. HEAD reads them too: its answer has
    /// GET's headers, `Content-Length` included, so the body is made and not sent.
    pub fn rows(&self) -> crate::store::query::PageRange {
        page_of(self.page, self.size)
    }

    /// Checks that the page exists among `total` items (`Invalid page.`) and builds
    /// the `Link` header of the list at `path`.
    ///
    /// # Errors
    /// A page past the last one.
    pub fn link(&self, path: &str, total: usize) -> Result<String, ApiError> {
        page_range(total, self.page, self.size)?;
        Ok(link_header(
            &self.base,
            path,
            &self.params,
            self.page,
            self.size,
            total,
        ))
    }

    /// A page the store found as the answer of the list at `path`, each item
    /// rendered by `render` (given the links' base): the tail of every list the
    /// store pages.
    ///
    /// # Errors
    /// A page past the last one.
    pub fn respond_page<'p, T, O: serde::Serialize>(
        &self,
        path: &str,
        found: &'p crate::store::query::Page<T>,
        render: impl Fn(&'p T, &super::render::Urls) -> O,
    ) -> Result<Response, ApiError> {
        let link = self.link(path, found.total)?;
        let urls = super::render::Urls {
            base: self.base.clone(),
        };
        let out: Vec<O> = found.items.iter().map(|i| render(i, &urls)).collect();
        Ok(self.respond(&out, found.total, link))
    }

    /// The page as the answer, with the fields `field=` picks.
    pub fn respond<T: serde::Serialize>(
        &self,
        items: &[T],
        total: usize,
        link: String,
    ) -> Response {
        page_response(items, &self.params.fields(), total, link)
    }
}

/// The rows of page `page` of `size`.
fn page_of(page: usize, size: usize) -> crate::store::query::PageRange {
    crate::store::query::PageRange {
        offset: (page - 1).saturating_mul(size),
        limit: size,
    }
}

/// A page of `total` items: the index range to return, or `Invalid page.`.
fn page_range(total: usize, page: usize, size: usize) -> Result<std::ops::Range<usize>, ApiError> {
    let start = (page - 1).saturating_mul(size);
    if page > 1 && start >= total {
        return Err(ApiError::InvalidPage);
    }
    Ok(start.min(total)..(start + size).min(total))
}

fn page_url(base: &str, path: &str, params: &Params, page: usize) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &params.pairs {
        if k != "page" {
            ser.append_pair(k, v);
        }
    }
    if page > 1 {
        ser.append_pair("page", &page.to_string());
    }
    let q = ser.finish();
    if q.is_empty() {
        format!("{base}{path}")
    } else {
        format!("{base}{path}?{q}")
    }
}

/// The `Link` header value: first and last always, prev and next when they exist.
/// Commas inside URLs are percent-encoded (the Python client splits on `,`).
fn link_header(
    base: &str,
    path: &str,
    params: &Params,
    page: usize,
    size: usize,
    total: usize,
) -> String {
    let last = total.div_ceil(size).max(1);
    let mut links = vec![format!(
        "<{}>; rel=\"first\"",
        page_url(base, path, params, 1)
    )];
    if page > 1 {
        links.push(format!(
            "<{}>; rel=\"prev\"",
            page_url(base, path, params, page - 1)
        ));
    }
    if page < last {
        links.push(format!(
            "<{}>; rel=\"next\"",
            page_url(base, path, params, page + 1)
        ));
    }
    links.push(format!(
        "<{}>; rel=\"last\"",
        page_url(base, path, params, last)
    ));
    links.join(", ")
}

/// A page of API shapes as a list answer (a bare JSON array plus `X-Result-Count` and
/// `Link`): serialised straight to JSON, or, when `field=` picks fields, each item
/// through a `Value` with only those fields.
fn page_response<T: serde::Serialize>(
    items: &[T],
    fields: &[&str],
    total: usize,
    link: String,
) -> Response {
    if fields.is_empty() {
        return list_body(items, total, link);
    }
    let picked: Vec<Value> = items.iter().map(|i| picked_fields(i, fields)).collect();
    list_body(&picked, total, link)
}

/// One API shape as an answer, with only the fields `field=` picks (all when it picks
/// none).
pub fn one_response<T: serde::Serialize>(item: &T, fields: &[&str]) -> Response {
    if fields.is_empty() {
        axum::Json(item).into_response()
    } else {
        axum::Json(picked_fields(item, fields)).into_response()
    }
}

/// One API shape with only the fields `field=` picks (all when it picks none).
pub fn picked_fields<T: serde::Serialize>(item: &T, fields: &[&str]) -> Value {
    // Serialising our own shapes cannot fail (string keys, no fallible fields).
    select_fields(serde_json::to_value(item).unwrap_or_default(), fields)
}

/// `items` as a bare JSON array with the list headers.
fn list_body<T: serde::Serialize>(items: &[T], total: usize, link: String) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert("x-result-count", HeaderValue::from(total));
    if let Ok(v) = HeaderValue::from_str(&link) {
        headers.insert(axum::http::header::LINK, v);
    }
    (headers, axum::Json(items)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_parse_in_the_forms_django_accepts() {
        let want = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        };
        let cases = [
            ("2024-05-01T10:00:00Z", want("2024-05-01T10:00:00Z")),
            ("2024-05-01T10:00:00.250Z", want("2024-05-01T10:00:00.250Z")),
            (
                "2024-05-01T10:00:00,5+00:00",
                want("2024-05-01T10:00:00.5Z"),
            ),
            ("2024-05-01T10:00:00+01:00", want("2024-05-01T09:00:00Z")),
            ("2024-05-01T10:00:00+0100", want("2024-05-01T09:00:00Z")),
            ("2024-05-01T10:00:00+01", want("2024-05-01T09:00:00Z")),
            ("2024-05-01T10:00:00-0230", want("2024-05-01T12:30:00Z")),
            ("2024-05-01 10:00:00", want("2024-05-01T10:00:00Z")),
            ("2024-05-01 10:00", want("2024-05-01T10:00:00Z")),
            (
                "2024-05-01T10:00:00.123456",
                want("2024-05-01T10:00:00.123456Z"),
            ),
            // A `+` sent unencoded in a query arrives as a space.
            ("2024-05-01T10:00:00 01:00", want("2024-05-01T09:00:00Z")),
            ("2024-05-01", want("2024-05-01T00:00:00Z")),
            ("yesterday", None),
            ("2024-05-01T10", None),
            ("2024-05-01T10:00:00+1", None),
            ("2024-05-01T10:00:00+25:00", None),
            ("2024-13-01T10:00:00Z", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_django_datetime(input), want, "{input}");
        }
    }

    #[test]
    fn unknown_orderings_are_refused() {
        let p = Params::parse(Some("o=-created&o=name"));
        assert_eq!(
            p.ordering_in(&["created", "name"]).ok(),
            Some(vec!["-created", "name"])
        );
        assert!(p.ordering_in(&["created"]).is_err());
    }

    #[test]
    fn repeated_and_comma_separated_values_are_flattened() {
        let p = Params::parse(Some(
            "state=Creating&state=OK,Erred&o=-created&field=a&field=b,c&x=",
        ));
        assert_eq!(p.all("state"), vec!["Creating", "OK", "Erred"]);
        assert_eq!(p.fields(), vec!["a", "b", "c"]);
        assert_eq!(p.one("x"), None);
    }

    #[test]
    fn link_header_table() {
        let p = Params::parse(Some("page=2&page_size=10&name=a,b"));
        // (page, total, expected rels)
        let cases = [
            (1, 5, vec!["first", "last"]),
            (1, 25, vec!["first", "next", "last"]),
            (2, 25, vec!["first", "prev", "next", "last"]),
            (3, 25, vec!["first", "prev", "last"]),
        ];
        for (page, total, rels) in cases {
            let h = link_header("http://h", "/api/x/", &p, page, 10, total);
            let got: Vec<&str> = h
                .split(", ")
                .map(|l| {
                    l.rsplit("rel=\"")
                        .next()
                        .unwrap_or("")
                        .trim_end_matches('"')
                })
                .collect();
            assert_eq!(got, rels, "{h}");
            assert!(
                !h.split(", ").any(|l| l.contains(",")),
                "commas must be encoded: {h}"
            );
            assert!(
                h.starts_with("<http://h/api/x/?page_size=10&name=a%2Cb>; rel=\"first\""),
                "{h}"
            );
        }
    }

    #[test]
    fn pages_beyond_the_end_are_invalid() {
        assert_eq!(page_range(25, 3, 10).ok(), Some(20..25));
        assert_eq!(page_range(0, 1, 10).ok(), Some(0..0));
        assert!(page_range(20, 3, 10).is_err());
        assert!(Params::parse(Some("page=0")).page().is_err());
        assert!(Params::parse(Some("page=x")).page().is_err());
        assert_eq!(
            Params::parse(Some("page_size=1000")).page().ok(),
            Some((1, 300))
        );
    }

    #[test]
    fn field_selection_keeps_known_fields_only() {
        let v = serde_json::json!({"a": 1, "b": 2});
        assert_eq!(
            select_fields(v.clone(), &["a", "zz"]),
            serde_json::json!({"a": 1})
        );
        assert_eq!(select_fields(v.clone(), &["zz"]), v);
    }
}
