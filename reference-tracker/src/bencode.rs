//! Bencoding (BEP 3), the only wire format of an HTTP tracker's answers.
//!
//! The format is four types (integers, byte strings, lists, dictionaries with
//! byte-string keys in sorted order), so a dependency is not worth it: this
//! module encodes every tracker response and decodes them again in tests.

use std::collections::BTreeMap;

/// A bencoded value. Dictionaries use a `BTreeMap`, which keeps keys sorted
/// as the format requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `i<n>e`
    Int(i64),
    /// `<len>:<bytes>`
    Bytes(Vec<u8>),
    /// `l...e`
    List(Vec<Value>),
    /// `d...e`
    Dict(BTreeMap<Vec<u8>, Value>),
}

impl Value {
    /// A byte string from text.
    pub fn str(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The bytes, if this is a byte string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The bytes as UTF-8 text, if this is a byte string holding text.
    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The items, if this is a list.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// The map, if this is a dictionary.
    pub fn as_dict(&self) -> Option<&BTreeMap<Vec<u8>, Value>> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// Looks up a text key in a dictionary.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_dict().and_then(|d| d.get(key.as_bytes()))
    }

    /// Encodes the value.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(i) => {
                out.push(b'i');
                out.extend_from_slice(i.to_string().as_bytes());
                out.push(b'e');
            }
            Value::Bytes(b) => {
                out.extend_from_slice(b.len().to_string().as_bytes());
                out.push(b':');
                out.extend_from_slice(b);
            }
            Value::List(l) => {
                out.push(b'l');
                for v in l {
                    v.encode_into(out);
                }
                out.push(b'e');
            }
            Value::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    out.extend_from_slice(k.len().to_string().as_bytes());
                    out.push(b':');
                    out.extend_from_slice(k);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }
}

/// Builds a dictionary from `(key, value)` pairs.
pub fn dict<I: IntoIterator<Item = (&'static str, Value)>>(items: I) -> Value {
    Value::Dict(
        items
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v))
            .collect(),
    )
}

/// Why some bytes are not one well-formed bencoded value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bencode: {what} at byte {at}")]
pub struct DecodeError {
    /// What was wrong.
    pub what: &'static str,
    /// Offset of the problem.
    pub at: usize,
}

/// Decodes exactly one value; trailing bytes are an error.
///
/// ```
/// use reference_tracker::bencode::{decode, Value};
/// let v = decode(b"d8:intervali120ee").unwrap();
/// assert_eq!(v.get("interval"), Some(&Value::Int(120)));
/// ```
pub fn decode(input: &[u8]) -> Result<Value, DecodeError> {
    let mut pos = 0;
    let v = decode_at(input, &mut pos, 0)?;
    if pos != input.len() {
        return Err(DecodeError {
            what: "trailing bytes",
            at: pos,
        });
    }
    Ok(v)
}

const MAX_DEPTH: usize = 64;

fn err(what: &'static str, at: usize) -> DecodeError {
    DecodeError { what, at }
}

fn decode_at(input: &[u8], pos: &mut usize, depth: usize) -> Result<Value, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(err("nested too deeply", *pos));
    }
    match input.get(*pos) {
        None => Err(err("unexpected end", *pos)),
        Some(b'i') => {
            let start = *pos + 1;
            let end = input[start..]
                .iter()
                .position(|&c| c == b'e')
                .map(|p| start + p)
                .ok_or_else(|| err("unterminated integer", *pos))?;
            let text =
                std::str::from_utf8(&input[start..end]).map_err(|_| err("bad integer", start))?;
            let bad_form = text.is_empty()
                || text == "-0"
                || (text.starts_with('0') && text.len() > 1)
                || text.starts_with("-0");
            if bad_form {
                return Err(err("bad integer", start));
            }
            let i = text.parse().map_err(|_| err("bad integer", start))?;
            *pos = end + 1;
            Ok(Value::Int(i))
        }
        Some(b'l') => {
            *pos += 1;
            let mut items = Vec::new();
            loop {
                match input.get(*pos) {
                    None => return Err(err("unterminated list", *pos)),
                    Some(b'e') => {
                        *pos += 1;
                        return Ok(Value::List(items));
                    }
                    Some(_) => items.push(decode_at(input, pos, depth + 1)?),
                }
            }
        }
        Some(b'd') => {
            *pos += 1;
            let mut map = BTreeMap::new();
            let mut last: Option<Vec<u8>> = None;
            loop {
                match input.get(*pos) {
                    None => return Err(err("unterminated dictionary", *pos)),
                    Some(b'e') => {
                        *pos += 1;
                        return Ok(Value::Dict(map));
                    }
                    Some(_) => {
                        let at = *pos;
                        let key = match decode_at(input, pos, depth + 1)? {
                            Value::Bytes(b) => b,
                            _ => return Err(err("dictionary key is not a string", at)),
                        };
                        if last.as_ref().is_some_and(|l| *l >= key) {
                            return Err(err("dictionary keys not sorted or repeated", at));
                        }
                        let v = decode_at(input, pos, depth + 1)?;
                        last = Some(key.clone());
                        map.insert(key, v);
                    }
                }
            }
        }
        Some(c) if c.is_ascii_digit() => {
            let start = *pos;
            let colon = input[start..]
                .iter()
                .position(|&c| c == b':')
                .map(|p| start + p)
                .ok_or_else(|| err("string without ':'", start))?;
            let len: usize = std::str::from_utf8(&input[start..colon])
                .ok()
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| err("bad string length", start))?;
            let body = colon + 1;
            let end = body
                .checked_add(len)
                .filter(|&e| e <= input.len())
                .ok_or_else(|| err("string runs past the end", start))?;
            *pos = end;
            Ok(Value::Bytes(input[body..end].to_vec()))
        }
        Some(_) => Err(err("unexpected byte", *pos)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_nested_values() {
        let v = dict([
            ("b", Value::List(vec![Value::Int(-3), Value::str("x")])),
            ("a", Value::Bytes(vec![0, 255, b':'])),
        ]);
        let bytes = v.encode();
        assert_eq!(bytes, b"d1:a3:\x00\xff:1:bli-3e1:xee".to_vec());
        assert_eq!(decode(&bytes).unwrap(), v);
    }

    #[test]
    fn rejects_malformed_input() {
        for bad in [
            &b"i03e"[..],
            b"i-0e",
            b"ie",
            b"5:abc",
            b"d1:b0:1:a0:e",
            b"l",
            b"i1ei2e",
            b"x",
            b"di1e0:e",
        ] {
            assert!(decode(bad).is_err(), "{:?} should fail", bad);
        }
    }
}
