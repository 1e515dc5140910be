//! Parsing of raw query strings into byte values.
//!
//! `info_hash` and `peer_id` are 20 raw bytes, percent-encoded, and usually not
//! UTF-8; axum's `Query` extractor decodes into `String` and so cannot carry
//! them. This module percent-decodes each parameter into bytes instead and
//! keeps repeated keys (scrape takes several `info_hash` parameters).

/// The decoded `key=value` pairs of a query string, in order.
#[derive(Debug, Default, Clone)]
pub struct RawQuery {
    pairs: Vec<(String, Vec<u8>)>,
}

/// A `%` escape that is not followed by two hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEscape {
    /// The parameter holding it.
    pub key: String,
}

impl RawQuery {
    /// Parses the part of a URI after `?` (without it). Keys are decoded
    /// lossily as text; values stay bytes. `+` is a space, as in forms.
    pub fn parse(query: &str) -> Result<RawQuery, BadEscape> {
        let mut pairs = Vec::new();
        for part in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let key_bytes = percent_decode(k).map_err(|_| BadEscape {
                key: String::from_utf8_lossy(k.as_bytes()).into_owned(),
            })?;
            let key = String::from_utf8_lossy(&key_bytes).into_owned();
            let value = percent_decode(v).map_err(|_| BadEscape { key: key.clone() })?;
            pairs.push((key, value));
        }
        Ok(RawQuery { pairs })
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// The first value of `key` as text, if it is UTF-8.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every value of `key`, in order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }
}

fn percent_decode(s: &str) -> Result<Vec<u8>, ()> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3).ok_or(())?;
                let hi = (hex[0] as char).to_digit(16).ok_or(())?;
                let lo = (hex[1] as char).to_digit(16).ok_or(())?;
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_binary_values_and_repeats() {
        let q = RawQuery::parse("info_hash=%00%FFa&port=6881&info_hash=b%2a&flag").unwrap();
        assert_eq!(q.get("info_hash"), Some(&[0u8, 255, b'a'][..]));
        assert_eq!(q.get_str("port"), Some("6881"));
        let all: Vec<_> = q.get_all("info_hash").collect();
        assert_eq!(all, vec![&[0u8, 255, b'a'][..], &b"b*"[..]]);
        assert_eq!(q.get("flag"), Some(&b""[..]));
        assert_eq!(q.get("missing"), None);
    }

    #[test]
    fn rejects_broken_escapes() {
        assert_eq!(
            RawQuery::parse("peer_id=%4").unwrap_err(),
            BadEscape {
                key: "peer_id".into()
            }
        );
        assert!(RawQuery::parse("x=%zz").is_err());
    }
}
