//! The Lua scripts that make each backplane operation one atomic step in
//! Redis, and their typed replies.
//!
//! Keys (all under the configured prefix `P`, see [`Keys`]):
//!
//! | key | type | holds | TTL |
//! |---|---|---|---|
//! | `P:epoch` | string | the cluster's epoch (decimal u64) | none |
//! | `P:seq` | string | the newest sequence number of the epoch | none |
//! | `P:<epoch>:t:<topic>` | stream | the topic's events, entry id `<seq>-0`, field `b` = body | history age, refreshed by every publish |
//! | `P:<epoch>:m:<topic>` | hash | `top`: the topic's newest seq; `floor`: events up to it are gone (the stream expired before) | meta TTL |
//! | `P:events` | channel | every event, in order ([`Message`](super::wire::Message)) | |
//! | `P:probe:<node>` | channel | a node's liveness probe: `<epoch> <top>` | |
//! | `P:presence:<node>` | hash | the node's subscribers per topic (`topic` → count) | presence TTL, refreshed every presence interval |
//! | `P:presence-clients:<node>` | hash | the node's client ids per topic (`topic` → `"id id …"`, the lowest ids in id order, capped) | the same TTL, written by the same script |
//! | `P:presence-info:<node>` | hash | the node's totals: `connections`, `topics`, `subscribers` | the same TTL, written by the same script |
//! | `P:presence-nodes` | sorted set | node → when its presence expires (Redis time, ms) | members past their time are removed by every read and write |
//!
//! Stream and meta keys carry the epoch, so a new epoch (the epoch or
//! seq key lost: `FLUSHALL`, a restart without persistence) starts from
//! empty streams whatever old keys survive. The scripts derive key names
//! from the prefix and the epoch they read, so they need a standalone Redis
//! (or one shard): the single sequence is one key anyway.
//!
//! Invariant **ONE-STEP**: the sequence number, the history append and the
//! fan-out message of an event are written by one script, which Redis
//! runs without interleaving; so the events channel carries every event in
//! sequence order, each stream holds its topic's events in the same order,
//! and a reader that reads `P:seq` and the streams in one script sees a
//! consistent cut.

use super::wire::parse_decimal;
use bytes::Bytes;
use redis::Value;
use std::fmt;

/// Key and channel names under one prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Names under `prefix`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The channel every event is published on.
    pub fn events(&self) -> String {
        format!("{}:events", self.prefix)
    }

    /// The probe channel of node `node`.
    pub fn probe(&self, node: &str) -> String {
        format!("{}:probe:{node}", self.prefix)
    }

    /// A topic's history stream in `epoch`.
    pub fn stream(&self, epoch: u64, topic: &str) -> String {
        format!("{}:{epoch}:t:{topic}", self.prefix)
    }
}

/// Publishes one event (ONE-STEP).
///
/// `ARGV`: prefix, candidate epoch (used when none is set), topic, body,
/// stream max length, stream TTL (s), meta TTL (s). Returns
/// `{epoch, seq}` as strings.
pub(crate) const PUBLISH: &str = r"
local prefix = ARGV[1]
local epoch = redis.call('GET', prefix .. ':epoch')
if (not epoch) or redis.call('EXISTS', prefix .. ':seq') == 0 then
  epoch = ARGV[2]
  redis.call('SET', prefix .. ':epoch', epoch)
  redis.call('SET', prefix .. ':seq', 0)
end
local seq = string.format('%d', redis.call('INCR', prefix .. ':seq'))
local topic = ARGV[3]
local stream = prefix .. ':' .. epoch .. ':t:' .. topic
local meta = prefix .. ':' .. epoch .. ':m:' .. topic
if redis.call('EXISTS', stream) == 0 then
  local top = redis.call('HGET', meta, 'top')
  if top then redis.call('HSET', meta, 'floor', top) end
end
redis.call('XADD', stream, 'MAXLEN', '~', ARGV[5], seq .. '-0', 'b', ARGV[4])
redis.call('EXPIRE', stream, ARGV[6])
redis.call('HSET', meta, 'top', seq)
redis.call('EXPIRE', meta, ARGV[7])
local now = redis.call('TIME')
local ms = string.format('%d', tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
redis.call('PUBLISH', prefix .. ':events',
  epoch .. ' ' .. seq .. ' ' .. ms .. ' ' .. string.len(topic) .. ' ' .. topic .. ARGV[4])
return {epoch, seq}
";

/// Reads the cut `(after, top]` of some topics' histories (ONE-STEP's
/// reader), creating the epoch if none is set.
///
/// `ARGV`: prefix, candidate epoch, `after`, topics… Returns
/// `{epoch, top, then per topic: complete_after, {seq, body, …}}`, where
/// `complete_after` is the newest seq of the topic that may be gone: the
/// stream's `max-deleted-entry-id`, or, once `MAXLEN` trimmed it (its
/// `entries-added` exceeds its `length`: Redis 7.0 does not move
/// `max-deleted-entry-id` on trims), the seq before its first kept
/// entry; the meta's
/// `floor` (an earlier stream expired), or the meta's `top` when the
/// stream itself expired.
pub(crate) const HISTORY: &str = r"
local prefix = ARGV[1]
local epoch = redis.call('GET', prefix .. ':epoch')
if (not epoch) or redis.call('EXISTS', prefix .. ':seq') == 0 then
  epoch = ARGV[2]
  redis.call('SET', prefix .. ':epoch', epoch)
  redis.call('SET', prefix .. ':seq', 0)
end
local top = redis.call('GET', prefix .. ':seq')
local after = ARGV[3]
local out = {epoch, top}
for i = 4, #ARGV do
  local topic = ARGV[i]
  local stream = prefix .. ':' .. epoch .. ':t:' .. topic
  local meta = prefix .. ':' .. epoch .. ':m:' .. topic
  local gone = tonumber(redis.call('HGET', meta, 'floor') or '0')
  local entries = {}
  if redis.call('EXISTS', stream) == 1 then
    local info = redis.call('XINFO', 'STREAM', stream)
    local field = {}
    for j = 1, #info, 2 do field[info[j]] = info[j + 1] end
    local function seq_of(id) return tonumber(string.match(id, '^(%d+)')) end
    local deleted = seq_of(field['max-deleted-entry-id'])
    if deleted > gone then gone = deleted end
    -- Trimming (MAXLEN) does not move max-deleted-entry-id in Redis 7.0:
    -- when entries were removed, everything before the first kept is gone.
    if tonumber(field['entries-added']) > tonumber(field['length']) then
      local removed = seq_of(field['last-generated-id'])
      if tonumber(field['length']) > 0 then
        removed = seq_of(field['recorded-first-entry-id']) - 1
      end
      if removed > gone then gone = removed end
    end
    for _, entry in ipairs(redis.call('XRANGE', stream, '(' .. after .. '-0', '+')) do
      entries[#entries + 1] = string.match(entry[1], '^(%d+)')
      entries[#entries + 1] = entry[2][2]
    end
  else
    local last = tonumber(redis.call('HGET', meta, 'top') or '0')
    if last > gone then gone = last end
  end
  out[#out + 1] = string.format('%d', gone)
  out[#out + 1] = entries
end
return out
";

/// Publishes `<epoch> <top>` on a node's probe channel (`ARGV`: prefix,
/// channel). The probe travels behind every event already published, on
/// the same subscriber connection, so its `top` tells the node whether it
/// missed the tail of the stream.
pub(crate) const PROBE: &str = r"
local prefix = ARGV[1]
local epoch = redis.call('GET', prefix .. ':epoch') or '0'
local top = redis.call('GET', prefix .. ':seq') or '0'
redis.call('PUBLISH', ARGV[2], epoch .. ' ' .. top)
return 1
";

/// Replaces a node's presence (`ARGV`: prefix, node, TTL in ms, the
/// node's `connections`, `topics`, `subscribers` totals, then
/// `topic, count, ids` triples, `ids` space-separated and empty when none
/// are listed): the three hashes are rewritten whole (CP1) and expire
/// with the node's entry in the node set, all on Redis's clock, so a node
/// that stops refreshing disappears within the TTL whatever the clocks of
/// the nodes say (CP2).
pub(crate) const PRESENCE_WRITE: &str = r"
local prefix = ARGV[1]
local node = ARGV[2]
local key = prefix .. ':presence:' .. node
local clients = prefix .. ':presence-clients:' .. node
local info = prefix .. ':presence-info:' .. node
local ttl = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('DEL', key, clients, info)
redis.call('HSET', info, 'connections', ARGV[4], 'topics', ARGV[5], 'subscribers', ARGV[6])
for i = 7, #ARGV, 3 do
  redis.call('HSET', key, ARGV[i], ARGV[i + 1])
  if ARGV[i + 2] ~= '' then redis.call('HSET', clients, ARGV[i], ARGV[i + 2]) end
end
redis.call('PEXPIRE', key, ttl)
redis.call('PEXPIRE', clients, ttl)
redis.call('PEXPIRE', info, ttl)
redis.call('ZADD', prefix .. ':presence-nodes', now + ttl, node)
redis.call('ZREMRANGEBYSCORE', prefix .. ':presence-nodes', '-inf', now)
return 1
";

/// Removes a node's presence at once (`ARGV`: prefix, node): a node that
/// leaves gracefully.
pub(crate) const PRESENCE_LEAVE: &str = r"
local prefix = ARGV[1]
local node = ARGV[2]
redis.call('DEL', prefix .. ':presence:' .. node, prefix .. ':presence-clients:' .. node,
  prefix .. ':presence-info:' .. node)
redis.call('ZREM', prefix .. ':presence-nodes', node)
return 1
";

/// Reads the live nodes' presence (`ARGV`: prefix, and a topic or
/// nothing): `{node, {topic, count, ...}, ...}`, only nodes whose entry has
/// not expired; with a topic, only that topic's count (nodes without
/// subscribers to it are left out).
pub(crate) const PRESENCE_READ: &str = r"
local prefix = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', prefix .. ':presence-nodes', '-inf', now)
local out = {}
for _, node in ipairs(redis.call('ZRANGE', prefix .. ':presence-nodes', 0, -1)) do
  local key = prefix .. ':presence:' .. node
  local counts
  if ARGV[2] then
    local c = redis.call('HGET', key, ARGV[2])
    if c then counts = {ARGV[2], c} end
  else
    counts = redis.call('HGETALL', key)
  end
  if counts then
    out[#out + 1] = node
    out[#out + 1] = counts
  end
end
return out
";

/// Reads one topic's subscribers and listed client ids on every live node
/// (`ARGV`: prefix, topic): `{node, count, ids, ...}`, `ids` as written
/// (space-separated, empty when the node listed none); nodes without
/// subscribers to the topic are left out. Counts and ids come from the
/// same write of each node (CP1).
pub(crate) const PRESENCE_CLIENTS: &str = r"
local prefix = ARGV[1]
local topic = ARGV[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', prefix .. ':presence-nodes', '-inf', now)
local out = {}
for _, node in ipairs(redis.call('ZRANGE', prefix .. ':presence-nodes', 0, -1)) do
  local c = redis.call('HGET', prefix .. ':presence:' .. node, topic)
  if c then
    out[#out + 1] = node
    out[#out + 1] = c
    out[#out + 1] = redis.call('HGET', prefix .. ':presence-clients:' .. node, topic) or ''
  end
end
return out
";

/// Reads every live node's totals (`ARGV`: prefix):
/// `{node, connections, topics, subscribers, ...}` (`0` for a total the
/// node did not write).
pub(crate) const PRESENCE_NODES: &str = r"
local prefix = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', prefix .. ':presence-nodes', '-inf', now)
local out = {}
for _, node in ipairs(redis.call('ZRANGE', prefix .. ':presence-nodes', 0, -1)) do
  local info = redis.call('HMGET', prefix .. ':presence-info:' .. node,
    'connections', 'topics', 'subscribers')
  out[#out + 1] = node
  for i = 1, 3 do out[#out + 1] = info[i] or '0' end
end
return out
";

/// A reply of a script that is not what the script returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyError(pub(crate) &'static str);

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unexpected reply from Redis: {}", self.0)
    }
}

impl std::error::Error for ReplyError {}

/// One topic's part of a [`Cut`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicCut {
    /// The topic.
    pub topic: String,
    /// Events of the topic up to this seq may be gone from Redis.
    pub complete_after: u64,
    /// Its retained events after the cut's `after`, in order.
    pub events: Vec<(u64, Bytes)>,
}

/// What the history script read, atomically.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    /// The cluster's epoch.
    pub epoch: u64,
    /// The newest seq of the epoch when read.
    pub top: u64,
    /// The topics asked for, in the order asked.
    pub topics: Vec<TopicCut>,
}

fn decimal(value: &Value, what: &'static str) -> Result<u64, ReplyError> {
    let bytes: &[u8] = match value {
        Value::BulkString(bytes) => bytes,
        Value::SimpleString(s) => s.as_bytes(),
        Value::Int(n) => return u64::try_from(*n).map_err(|_| ReplyError(what)),
        _ => return Err(ReplyError(what)),
    };
    parse_decimal(bytes).ok_or(ReplyError(what))
}

/// `{epoch, seq}` of [`PUBLISH`].
pub(crate) fn parse_published(value: &Value) -> Result<(u64, u64), ReplyError> {
    match value {
        Value::Array(items) if items.len() == 2 => Ok((
            decimal(&items[0], "publish epoch")?,
            decimal(&items[1], "publish seq")?,
        )),
        _ => Err(ReplyError("publish reply shape")),
    }
}

/// The reply of [`HISTORY`] for `topics`.
pub(crate) fn parse_cut(value: Value, topics: &[String]) -> Result<Cut, ReplyError> {
    let Value::Array(items) = value else {
        return Err(ReplyError("history reply shape"));
    };
    if items.len() != 2 + 2 * topics.len() {
        return Err(ReplyError("history reply length"));
    }
    let epoch = decimal(&items[0], "history epoch")?;
    let top = decimal(&items[1], "history top")?;
    let mut cuts = Vec::with_capacity(topics.len());
    let mut rest = items.into_iter().skip(2);
    for topic in topics {
        let (Some(gone), Some(Value::Array(entries))) = (rest.next(), rest.next()) else {
            return Err(ReplyError("history topic shape"));
        };
        let complete_after = decimal(&gone, "history floor")?;
        if entries.len() % 2 != 0 {
            return Err(ReplyError("history entries shape"));
        }
        let mut events = Vec::with_capacity(entries.len() / 2);
        let mut entries = entries.into_iter();
        while let (Some(seq), Some(body)) = (entries.next(), entries.next()) {
            let seq = decimal(&seq, "history entry id")?;
            let Value::BulkString(body) = body else {
                return Err(ReplyError("history entry body"));
            };
            events.push((seq, Bytes::from(body)));
        }
        cuts.push(TopicCut {
            topic: topic.clone(),
            complete_after,
            events,
        });
    }
    Ok(Cut {
        epoch,
        top,
        topics: cuts,
    })
}

/// `<epoch> <top>` of a probe message.
pub(crate) fn parse_probe(payload: &[u8]) -> Option<(u64, u64)> {
    let mut parts = payload.split(|&b| b == b' ');
    let epoch = parse_decimal(parts.next()?)?;
    let top = parse_decimal(parts.next()?)?;
    parts.next().is_none().then_some((epoch, top))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn replies_parse_and_bad_shapes_are_errors() {
        assert_eq!(
            parse_published(&Value::Array(vec![bulk("7"), bulk("12")])),
            Ok((7, 12))
        );
        assert!(parse_published(&Value::Array(vec![bulk("x"), bulk("1")])).is_err());
        let reply = Value::Array(vec![
            bulk("7"),
            bulk("12"),
            bulk("3"),
            Value::Array(vec![bulk("5"), bulk("data: a\n\n")]),
        ]);
        let cut = parse_cut(reply, &["t".to_owned()]).unwrap();
        assert_eq!((cut.epoch, cut.top), (7, 12));
        assert_eq!(cut.topics[0].complete_after, 3);
        assert_eq!(
            cut.topics[0].events,
            [(5, Bytes::from_static(b"data: a\n\n"))]
        );
        assert!(parse_cut(Value::Array(vec![bulk("7"), bulk("12")]), &["t".to_owned()]).is_err());
        assert_eq!(parse_probe(b"7 12"), Some((7, 12)));
        assert_eq!(parse_probe(b"7 12 1"), None);
        assert_eq!(parse_probe(b"7"), None);
    }
}
