//! The presence routes: `GET /topics` and `GET /topics/{topic}`, answered
//! from the hub's snapshots ([`Hub::topics_snapshot`],
//! [`Hub::topic_presence`]), which never stall publishing.
//!
//! The caller (`routes`) checks the admin token first, exactly as for
//! `POST /publish`. Here every query value is parsed strictly: a bad one
//! is a [`BadRequest`] (400), never a panic or a silent default.
//!
//! | route | query | answers |
//! |---|---|---|
//! | `GET /topics` | `limit` (1..=1000, default 100), `cursor`, `sort=subscribers\|name` | `{topics: [summary], next_cursor, total}` |
//! | `GET /topics/{topic}` | `clients=true`, then `limit`, `cursor` (a client id) | `summary` (+ `clients`, `next_cursor`; clustered: + `cluster`, `cluster_clients`); 404 unknown topic |
//!
//! On a clustered node, `GET /topics/{topic}` adds `cluster`: the
//! subscribers on every live node (`{subscribers, nodes: {name: n}}`,
//! from the presence each node keeps in Redis, see `crate::cluster`).
//! With `clients=true` it also adds `cluster_clients`: per live node with
//! subscribers, `{subscribers, clients, next_cursor, truncated}`, its ids
//! as it last wrote them (client ids are per node, so they stay grouped by
//! node), paged by the same `limit` and `cursor` as the local `clients`;
//! `truncated` says the node has more subscribers than it writes (the
//! caps of `crate::cluster::PresenceLimits`, 1000 ids per topic by
//! default). `clients` stays the node's own, live.
//!
//! A summary is `{topic, subscribers, retained, retained_bytes,
//! last_event_id, events_last_minute, events_per_second}`. The topic in
//! the path is percent-decoded and may contain `/` as is
//! (`/topics/orders/42`) or encoded (`/topics/orders%2F42`).

use super::{json, Answer};
use crate::cluster::{Backplane, ClusterCount, NodeClients};
use crate::query::{self, QueryError};
use crate::respond::json_error;
use http::StatusCode;
use serde_json::{json as value, Value};
use ssehub_core::{
    validate_topic, ClientId, ClientPage, Hub, ParseCursorError, ParseIdError, ParseSortError,
    TopicCursor, TopicError, TopicPage, TopicSort, TopicSummary, DEFAULT_PRESENCE_PAGE,
    MAX_PRESENCE_PAGE,
};
use std::fmt;

/// Why a presence request was refused with 400.
#[derive(Debug)]
enum BadRequest {
    /// The query string does not decode.
    Query(QueryError),
    /// The topic in the path does not decode.
    Path(QueryError),
    /// The decoded topic is not a valid name.
    Topic(TopicError),
    /// A parameter the route does not take.
    Unknown(String),
    /// A parameter given twice.
    Repeated(&'static str),
    /// `limit` is not a number in `1..=MAX_PRESENCE_PAGE`.
    Limit(String),
    /// `sort` is not `subscribers` or `name`.
    Sort(ParseSortError),
    /// `cursor` is not one `GET /topics` handed out.
    TopicCursor(ParseCursorError),
    /// `cursor` is not a client id.
    ClientCursor(ParseIdError),
    /// `clients` is not a boolean.
    Clients(String),
    /// `limit` or `cursor` on a topic without `clients=true`.
    PagingWithoutClients,
}

impl fmt::Display for BadRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Query(e) => write!(f, "{e}"),
            Self::Path(e) => write!(f, "topic in the path: {e}"),
            Self::Topic(e) => write!(f, "topic in the path: {e}"),
            Self::Unknown(name) => write!(f, "unknown query parameter {name:?}"),
            Self::Repeated(name) => write!(f, "query parameter {name:?} given twice"),
            Self::Limit(given) => write!(
                f,
                "limit must be a number from 1 to {MAX_PRESENCE_PAGE}, not {given:?}"
            ),
            Self::Sort(e) => write!(f, "{e}"),
            Self::TopicCursor(e) => write!(f, "{e} (pass back a next_cursor as given)"),
            Self::ClientCursor(e) => write!(f, "cursor: {e} (pass back a next_cursor as given)"),
            Self::Clients(given) => write!(f, "clients must be true or false, not {given:?}"),
            Self::PagingWithoutClients => f.write_str("limit and cursor need clients=true"),
        }
    }
}

impl BadRequest {
    fn answer(&self) -> Answer {
        json_error(StatusCode::BAD_REQUEST, &self.to_string())
    }
}

/// `GET /topics`.
pub(super) fn list(hub: &Hub, query: Option<&str>) -> Answer {
    match list_page(query) {
        Ok(page) => {
            let list = hub.topics_snapshot(&page);
            let topics: Vec<Value> = list.topics.iter().map(summary).collect();
            json(
                StatusCode::OK,
                value!({
                    "topics": topics,
                    "next_cursor": list.next.map(|c| c.to_string()),
                    "total": list.total,
                }),
            )
        }
        Err(bad) => bad.answer(),
    }
}

/// `GET /topics/{topic}`: `raw` is the path after `/topics/`, still
/// percent-encoded.
pub(super) fn topic(hub: &Hub, raw: &str, query: Option<&str>) -> Answer {
    let (name, clients) = match topic_request(raw, query) {
        Ok(request) => request,
        Err(bad) => return bad.answer(),
    };
    let clients = clients.map(|c| c.page());
    let Some(presence) = hub.topic_presence(&name, clients.as_ref()) else {
        return json_error(StatusCode::NOT_FOUND, &format!("no topic {name:?}"));
    };
    let mut body = summary(&presence.summary);
    if let (Some(list), Value::Object(fields)) = (presence.clients, &mut body) {
        let ids: Vec<String> = list.ids.iter().map(ToString::to_string).collect();
        fields.insert("clients".to_owned(), value!(ids));
        fields.insert(
            "next_cursor".to_owned(),
            value!(list.next.map(|id| id.to_string())),
        );
    }
    json(StatusCode::OK, body)
}

/// `GET /topics/{topic}` on a clustered node: the node's own figures (or
/// zeros, when only other nodes have the topic) and `cluster`: the
/// subscribers of every live node, `{subscribers, nodes: {name: n}}`, as
/// fresh as the presence interval. With `clients=true`, also
/// `cluster_clients` (see the module docs), from the same read as
/// `cluster`. If Redis cannot be read, `cluster` (and `cluster_clients`)
/// are `null` and `cluster_error` says why; the node's figures still
/// answer.
pub(super) async fn cluster_topic(
    hub: &Hub,
    backplane: &Backplane,
    raw: &str,
    query: Option<&str>,
) -> Answer {
    let (name, clients) = match topic_request(raw, query) {
        Ok(request) => request,
        Err(bad) => return bad.answer(),
    };
    let local = hub.topic_presence(&name, clients.map(|c| c.page()).as_ref());
    // One read: the counts and, when asked for, the lists, of one write
    // per node (CP1).
    let cluster = match clients {
        Some(_) => backplane.cluster_clients(&name).await.map(|nodes| {
            let count = ClusterCount {
                subscribers: nodes.iter().map(|n| n.subscribers).sum(),
                nodes: nodes
                    .iter()
                    .map(|n| (n.node.clone(), n.subscribers))
                    .collect(),
            };
            (count, Some(nodes))
        }),
        None => backplane
            .cluster_count(&name)
            .await
            .map(|count| (count, None)),
    };
    let known_elsewhere = cluster.as_ref().is_ok_and(|(c, _)| c.subscribers > 0);
    let mut body = match &local {
        Some(presence) => summary(&presence.summary),
        None if known_elsewhere => value!({
            "topic": name,
            "subscribers": 0,
            "retained": 0,
            "retained_bytes": 0,
            "last_event_id": null,
            "events_last_minute": 0,
            "events_per_second": 0.0,
        }),
        None => return json_error(StatusCode::NOT_FOUND, &format!("no topic {name:?}")),
    };
    if let Value::Object(fields) = &mut body {
        if let Some(list) = local.and_then(|p| p.clients) {
            let ids: Vec<String> = list.ids.iter().map(ToString::to_string).collect();
            fields.insert("clients".to_owned(), value!(ids));
            fields.insert(
                "next_cursor".to_owned(),
                value!(list.next.map(|id| id.to_string())),
            );
        } else if clients.is_some() {
            fields.insert("clients".to_owned(), value!([]));
            fields.insert("next_cursor".to_owned(), Value::Null);
        }
        match cluster {
            Ok((count, lists)) => {
                let nodes: serde_json::Map<String, Value> = count
                    .nodes
                    .into_iter()
                    .map(|(node, n)| (node, value!(n)))
                    .collect();
                fields.insert(
                    "cluster".to_owned(),
                    value!({"subscribers": count.subscribers, "nodes": nodes}),
                );
                if let (Some(lists), Some(query)) = (lists, clients) {
                    let lists: serde_json::Map<String, Value> = lists
                        .into_iter()
                        .map(|node| (node.node.clone(), node_clients(&node, query)))
                        .collect();
                    fields.insert("cluster_clients".to_owned(), Value::Object(lists));
                }
            }
            Err(error) => {
                fields.insert("cluster".to_owned(), Value::Null);
                if clients.is_some() {
                    fields.insert("cluster_clients".to_owned(), Value::Null);
                }
                fields.insert("cluster_error".to_owned(), value!(error.to_string()));
            }
        }
    }
    json(StatusCode::OK, body)
}

/// One node's entry of `cluster_clients`: its listed ids after the
/// query's cursor, at most its limit, paged exactly as the local list.
fn node_clients(node: &NodeClients, query: ClientsQuery) -> Value {
    let mut ids = node
        .clients
        .iter()
        .filter(|id| query.after.is_none_or(|after| **id > after));
    let page: Vec<String> = ids
        .by_ref()
        .take(query.limit)
        .map(ToString::to_string)
        .collect();
    let more = ids.next().is_some();
    let next = page.last().filter(|_| more);
    value!({
        "subscribers": node.subscribers,
        "clients": page,
        "next_cursor": next,
        "truncated": node.truncated(),
    })
}

fn summary(topic: &TopicSummary) -> Value {
    value!({
        "topic": topic.name,
        "subscribers": topic.subscribers,
        "retained": topic.retained,
        "retained_bytes": topic.retained_bytes,
        "last_event_id": topic.last_event_id.map(|id| id.to_string()),
        "events_last_minute": topic.events_last_minute,
        "events_per_second": topic.events_per_second(),
    })
}

/// The query's pairs, each name at most once.
fn pairs(query: Option<&str>) -> Result<Vec<(String, String)>, BadRequest> {
    let pairs = query::parse(query.unwrap_or("")).map_err(BadRequest::Query)?;
    for (i, (name, _)) in pairs.iter().enumerate() {
        if let Some(known) = ["limit", "cursor", "sort", "clients"]
            .into_iter()
            .find(|known| known == name)
        {
            if pairs[..i].iter().any(|(earlier, _)| earlier == name) {
                return Err(BadRequest::Repeated(known));
            }
        }
    }
    Ok(pairs)
}

fn limit(given: &str) -> Result<usize, BadRequest> {
    given
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_PRESENCE_PAGE).contains(n))
        .ok_or_else(|| BadRequest::Limit(given.to_owned()))
}

fn list_page(query: Option<&str>) -> Result<TopicPage, BadRequest> {
    let (mut sort, mut size, mut cursor) = (TopicSort::Subscribers, None, None);
    for (name, given) in pairs(query)? {
        match name.as_str() {
            "limit" => size = Some(limit(&given)?),
            "sort" => sort = given.parse().map_err(BadRequest::Sort)?,
            "cursor" => {
                cursor = Some(
                    given
                        .parse::<TopicCursor>()
                        .map_err(BadRequest::TopicCursor)?,
                );
            }
            _ => return Err(BadRequest::Unknown(name)),
        }
    }
    let mut page = TopicPage::new(sort);
    if let Some(size) = size {
        page = page.limit(size);
    }
    if let Some(cursor) = cursor {
        page = page.after(cursor);
    }
    Ok(page)
}

/// The client page a `GET /topics/{topic}?clients=true` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ClientsQuery {
    /// `limit`, `1..=MAX_PRESENCE_PAGE`.
    limit: usize,
    /// `cursor`: ids strictly after it.
    after: Option<ClientId>,
}

impl ClientsQuery {
    fn page(self) -> ClientPage {
        let page = ClientPage::new().limit(self.limit);
        match self.after {
            Some(after) => page.after(after),
            None => page,
        }
    }
}

fn topic_request(
    raw: &str,
    query: Option<&str>,
) -> Result<(String, Option<ClientsQuery>), BadRequest> {
    let name = decode_path(raw).map_err(BadRequest::Path)?;
    validate_topic(&name).map_err(BadRequest::Topic)?;
    let (mut clients, mut size, mut cursor) = (false, None, None);
    for (param, given) in pairs(query)? {
        match param.as_str() {
            "clients" => {
                clients = match given.as_str() {
                    "true" | "1" | "" => true,
                    "false" | "0" => false,
                    _ => return Err(BadRequest::Clients(given)),
                }
            }
            "limit" => size = Some(limit(&given)?),
            "cursor" => {
                cursor = Some(
                    given
                        .parse::<ClientId>()
                        .map_err(BadRequest::ClientCursor)?,
                );
            }
            _ => return Err(BadRequest::Unknown(param)),
        }
    }
    if !clients {
        if size.is_some() || cursor.is_some() {
            return Err(BadRequest::PagingWithoutClients);
        }
        return Ok((name, None));
    }
    Ok((
        name,
        Some(ClientsQuery {
            limit: size.unwrap_or(DEFAULT_PRESENCE_PAGE),
            after: cursor,
        }),
    ))
}

/// Percent-decodes a path: `%XX` escapes must be complete, the result
/// UTF-8. Unlike a query, `+` is a plus sign.
fn decode_path(raw: &str) -> Result<String, QueryError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = |at: usize| bytes.get(at).and_then(|b| (*b as char).to_digit(16));
            let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
                return Err(QueryError::BadEscape);
            };
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| QueryError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_decode_strictly_and_keep_plus_signs() {
        assert_eq!(decode_path("orders/42").unwrap(), "orders/42");
        assert_eq!(decode_path("orders%2F42").unwrap(), "orders/42");
        assert_eq!(decode_path("a+b%20c").unwrap(), "a+b c");
        assert_eq!(decode_path("%C3%A9").unwrap(), "é");
        assert_eq!(decode_path("a%2"), Err(QueryError::BadEscape));
        assert_eq!(decode_path("a%zz"), Err(QueryError::BadEscape));
        assert_eq!(decode_path("%FF"), Err(QueryError::NotUtf8));
    }

    #[test]
    fn a_nodes_list_pages_like_the_local_one_and_says_when_it_was_cut() {
        let ids = ["1.1", "2.2", "3.3"].map(|id| id.parse::<ClientId>().unwrap());
        let node = NodeClients {
            node: "a".to_owned(),
            subscribers: 4,
            clients: ids.to_vec(),
        };
        let page = |limit, after: Option<&str>| {
            node_clients(
                &node,
                ClientsQuery {
                    limit,
                    after: after.map(|id| id.parse().unwrap()),
                },
            )
        };
        assert_eq!(
            page(2, None),
            value!({"subscribers": 4, "clients": ["1.1", "2.2"], "next_cursor": "2.2", "truncated": true})
        );
        assert_eq!(
            page(2, Some("2.2")),
            value!({"subscribers": 4, "clients": ["3.3"], "next_cursor": null, "truncated": true})
        );
        // A page exactly full is the last one.
        assert_eq!(page(3, None)["next_cursor"], Value::Null);
        let whole = NodeClients {
            subscribers: 3,
            ..node.clone()
        };
        assert_eq!(
            node_clients(
                &whole,
                ClientsQuery {
                    limit: 100,
                    after: None
                }
            )["truncated"],
            false
        );
    }

    #[test]
    fn query_values_are_refused_by_type() {
        assert!(matches!(
            list_page(Some("limit=0")),
            Err(BadRequest::Limit(_))
        ));
        assert!(matches!(
            list_page(Some("limit=1001")),
            Err(BadRequest::Limit(_))
        ));
        assert!(matches!(
            list_page(Some("limit=-1")),
            Err(BadRequest::Limit(_))
        ));
        assert!(matches!(
            list_page(Some("sort=size")),
            Err(BadRequest::Sort(_))
        ));
        assert!(matches!(
            list_page(Some("cursor=zz")),
            Err(BadRequest::TopicCursor(_))
        ));
        assert!(matches!(
            list_page(Some("limit=1&limit=2")),
            Err(BadRequest::Repeated("limit"))
        ));
        assert!(matches!(
            list_page(Some("offset=3")),
            Err(BadRequest::Unknown(_))
        ));
        assert_eq!(
            list_page(Some("limit=1000&sort=name")).unwrap(),
            TopicPage::new(TopicSort::Name).limit(1000)
        );
        assert!(matches!(
            topic_request("a", Some("limit=3")),
            Err(BadRequest::PagingWithoutClients)
        ));
        assert!(matches!(
            topic_request("a", Some("clients=yes")),
            Err(BadRequest::Clients(_))
        ));
        assert!(matches!(
            topic_request("a", Some("clients=true&cursor=3.0")),
            Err(BadRequest::ClientCursor(_))
        ));
        assert!(matches!(
            topic_request("a%0Ab", None),
            Err(BadRequest::Topic(_))
        ));
        assert!(matches!(topic_request("", None), Err(BadRequest::Topic(_))));
    }
}
