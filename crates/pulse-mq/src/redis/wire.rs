//! The stream entry layout of a message, and the parsing of replies.

use std::fmt;

use bytes::Bytes;
use deadpool_redis::redis::{Cmd, RedisWrite, ToRedisArgs, Value};
use pulse_core::mq::Message;

const ID: &[u8] = b"id";
const KEY: &[u8] = b"key";
const PAYLOAD: &[u8] = b"p";
const HEADER_PREFIX: &[u8] = b"h:";

/// Appends the entry fields of `message` to an `XADD` command.
pub(crate) fn append_fields(cmd: &mut Cmd, message: &Message) {
    cmd.arg(ID).arg(&message.id);
    if let Some(key) = &message.key {
        cmd.arg(KEY).arg(key);
    }
    for (name, value) in &message.headers {
        let mut field = Vec::with_capacity(HEADER_PREFIX.len() + name.len());
        field.extend_from_slice(HEADER_PREFIX);
        field.extend_from_slice(name.as_bytes());
        cmd.arg(field).arg(value);
    }
    cmd.arg(PAYLOAD).arg(&message.payload[..]);
}

/// A stream entry id, `<milliseconds>-<sequence>`, kept as two integers so
/// that queueing an ack allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct EntryId {
    millis: u64,
    seq: u64,
}

impl EntryId {
    fn parse(text: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(text).ok()?;
        let (millis, seq) = text.split_once('-')?;
        Some(EntryId {
            millis: millis.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.millis, self.seq)
    }
}

impl ToRedisArgs for EntryId {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + RedisWrite,
    {
        out.write_arg_fmt(self);
    }
}

/// A stream entry read back: its entry id and the message, or `None` for an
/// entry whose fields are not a pulse-mq message (it is acked and skipped).
pub(crate) struct Entry {
    pub(crate) entry_id: EntryId,
    pub(crate) message: Option<Message>,
}

/// Reads the entries of an `XREADGROUP` reply for one stream (RESP2 array
/// or RESP3 map). A `Nil` reply (the block timed out) has none.
pub(crate) fn read_reply(value: Value) -> Vec<Entry> {
    let streams = match value {
        Value::Array(streams) => streams
            .into_iter()
            .filter_map(|stream| match stream {
                Value::Array(mut pair) if pair.len() == 2 => Some(pair.swap_remove(1)),
                _ => None,
            })
            .collect(),
        Value::Map(streams) => streams.into_iter().map(|(_, entries)| entries).collect(),
        _ => Vec::new(),
    };
    streams.into_iter().flat_map(entries).collect()
}

/// Reads an array of `[entry id, [field, value, ...]]` pairs.
pub(crate) fn entries(value: Value) -> Vec<Entry> {
    let Value::Array(items) = value else {
        return Vec::new();
    };
    items.into_iter().filter_map(entry).collect()
}

fn entry(value: Value) -> Option<Entry> {
    let Value::Array(mut pair) = value else {
        return None;
    };
    if pair.len() != 2 {
        return None;
    }
    let fields = pair.pop()?;
    let entry_id = EntryId::parse(&bytes(pair.pop()?)?)?;
    Some(Entry {
        message: message(fields),
        entry_id,
    })
}

fn message(fields: Value) -> Option<Message> {
    let flat: Vec<Value> = match fields {
        Value::Array(flat) => flat,
        Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => return None,
    };
    let mut message = Message::default();
    let mut has_id = false;
    let mut values = flat.into_iter();
    while let (Some(name), Some(value)) = (values.next(), values.next()) {
        let name = bytes(name)?;
        let value = bytes(value)?;
        match &name[..] {
            ID => {
                message.id = String::from_utf8(value).ok()?;
                has_id = true;
            }
            KEY => message.key = Some(String::from_utf8(value).ok()?),
            PAYLOAD => message.payload = Bytes::from(value),
            other => {
                let header = other.strip_prefix(HEADER_PREFIX)?;
                message.headers.insert(
                    String::from_utf8(header.to_vec()).ok()?,
                    String::from_utf8(value).ok()?,
                );
            }
        }
    }
    has_id.then_some(message)
}

fn bytes(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) => Some(text.into_bytes()),
        _ => None,
    }
}

pub(crate) fn text(value: Value) -> Option<String> {
    bytes(value).and_then(|b| String::from_utf8(b).ok())
}

/// Reads an `XAUTOCLAIM` reply: the next cursor, the claimed entries and
/// the ids of entries that were deleted from the stream while pending.
pub(crate) fn autoclaim_reply(value: Value) -> (String, Vec<Entry>, Vec<String>) {
    let Value::Array(mut parts) = value else {
        return ("0-0".to_owned(), Vec::new(), Vec::new());
    };
    let deleted = if parts.len() >= 3 {
        match parts.remove(2) {
            Value::Array(ids) => ids.into_iter().filter_map(text).collect(),
            _ => Vec::new(),
        }
    } else {
        Vec::new()
    };
    let claimed = if parts.len() >= 2 {
        entries(parts.remove(1))
    } else {
        Vec::new()
    };
    let cursor = parts
        .into_iter()
        .next()
        .and_then(text)
        .unwrap_or_else(|| "0-0".to_owned());
    (cursor, claimed, deleted)
}

/// Reads an extended `XPENDING` reply into `(entry id, times delivered)`.
pub(crate) fn pending_counts(value: Value) -> Vec<(EntryId, u64)> {
    let Value::Array(rows) = value else {
        return Vec::new();
    };
    rows.into_iter()
        .filter_map(|row| {
            let Value::Array(mut fields) = row else {
                return None;
            };
            if fields.len() < 4 {
                return None;
            }
            let count = match fields.swap_remove(3) {
                Value::Int(n) => u64::try_from(n).ok()?,
                _ => return None,
            };
            Some((EntryId::parse(&bytes(fields.swap_remove(0))?)?, count))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn entry_round_trip() {
        let sent = Message::new("m-1", &b"\x00\xffbody"[..])
            .with_key("k")
            .with_header("trace", "t 1");
        let mut cmd = deadpool_redis::redis::cmd("XADD");
        append_fields(&mut cmd, &sent);
        let args: Vec<Value> = cmd
            .args_iter()
            .skip(1)
            .map(|arg| match arg {
                deadpool_redis::redis::Arg::Simple(bytes) => Value::BulkString(bytes.to_vec()),
                _ => Value::Nil,
            })
            .collect();
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("s"),
            Value::Array(vec![Value::Array(vec![bulk("1-0"), Value::Array(args)])]),
        ])]);
        let entries = read_reply(reply);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].entry_id.to_string(), "1-0");
        assert_eq!(entries[0].message.as_ref(), Some(&sent));
    }

    #[test]
    fn entry_id_round_trip() {
        let id = EntryId::parse(b"1700000000123-42").unwrap();
        assert_eq!(id.to_string(), "1700000000123-42");
        assert!(EntryId::parse(b"not-an-id").is_none());
        assert!(EntryId::parse(b"17").is_none());
    }

    #[test]
    fn foreign_entry_has_no_message() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("1-0"),
            Value::Array(vec![bulk("other"), bulk("x")]),
        ])]);
        let parsed = entries(reply);
        assert_eq!(parsed.len(), 1);
        assert!(parsed[0].message.is_none());
    }
}
