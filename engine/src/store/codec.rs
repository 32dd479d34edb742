//! Value codecs: one version byte, then the encoding that version names. A value written by a
//! newer engine is refused instead of misread, and an old version stays readable when a table
//! moves to a new one.
//!
//! | version | encoding |
//! | --- | --- |
//! | 1 | JSON (serde) |

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::table::Value;

/// The version byte of JSON values.
const JSON_V1: u8 = 1;

/// Encodes `value` as version-1 JSON.
///
/// # Errors
///
/// When `value` cannot be serialised (a map with non-string keys).
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::with_capacity(128);
    bytes.push(JSON_V1);
    serde_json::to_writer(&mut bytes, value).map_err(|error| error.to_string())?;
    Ok(bytes)
}

/// Decodes a value written by [`encode`].
///
/// # Errors
///
/// When the version byte is unknown or the value does not parse.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match bytes.split_first() {
        Some((&JSON_V1, json)) => serde_json::from_slice(json).map_err(|error| error.to_string()),
        Some((version, _)) => Err(format!(
            "unknown codec version {version} (this smsflow reads version {JSON_V1})"
        )),
        None => Err("the value is empty".to_owned()),
    }
}

/// Implements [`Value`] for serde types as versioned JSON.
macro_rules! json_value {
    ($($type:ty),* $(,)?) => {
        $(impl $crate::store::table::Value for $type {
            fn encode(&self) -> Result<Vec<u8>, String> {
                $crate::store::codec::encode(self)
            }
            fn decode(bytes: &[u8]) -> Result<Self, String> {
                $crate::store::codec::decode(bytes)
            }
        })*
    };
}
pub(super) use json_value;

/// Raw bytes (plugin values).
impl Value for Vec<u8> {
    fn encode(&self) -> Result<Vec<u8>, String> {
        Ok(self.clone())
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        Ok(bytes.to_vec())
    }
}

/// UTF-8 text (flow files, reasons).
impl Value for String {
    fn encode(&self) -> Result<Vec<u8>, String> {
        Ok(self.as_bytes().to_vec())
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        String::from_utf8(bytes.to_vec()).map_err(|error| error.to_string())
    }
}

/// Nothing: the key is the information (index tables).
impl Value for () {
    fn encode(&self) -> Result<Vec<u8>, String> {
        Ok(Vec::new())
    }

    fn decode(_bytes: &[u8]) -> Result<Self, String> {
        Ok(())
    }
}

/// A sequence number, big-endian (index tables pointing at rows).
impl Value for u64 {
    fn encode(&self) -> Result<Vec<u8>, String> {
        Ok(self.to_be_bytes().to_vec())
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        let bytes: [u8; 8] = bytes
            .try_into()
            .map_err(|_| format!("expected 8 bytes, found {}", bytes.len()))?;
        Ok(u64::from_be_bytes(bytes))
    }
}

/// An instant in milliseconds, as a [`time_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeMs(pub i64);

impl Value for TimeMs {
    fn encode(&self) -> Result<Vec<u8>, String> {
        Ok(time_key(self.0).to_vec())
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        let bytes: [u8; 8] = bytes
            .try_into()
            .map_err(|_| format!("expected 8 bytes, found {}", bytes.len()))?;
        Ok(Self(time_from_key(bytes)))
    }
}

/// A big-endian key for a time in milliseconds that sorts in time order, negatives first.
pub fn time_key(ms: i64) -> [u8; 8] {
    (ms.cast_unsigned() ^ (1 << 63)).to_be_bytes()
}

/// The time of a key written by [`time_key`].
pub fn time_from_key(key: [u8; 8]) -> i64 {
    (u64::from_be_bytes(key) ^ (1 << 63)).cast_signed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_keys_sort_in_time_order() {
        let times = [i64::MIN, -5, 0, 7, 1_700_000_000_000, i64::MAX];
        let keys: Vec<[u8; 8]> = times.iter().map(|&t| time_key(t)).collect();
        assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(times.iter().all(|&t| time_from_key(time_key(t)) == t));
    }

    #[test]
    fn refuses_unknown_versions() {
        let bytes = encode(&vec![1, 2]).unwrap();
        assert_eq!(decode::<Vec<i32>>(&bytes).unwrap(), vec![1, 2]);
        let mut newer = bytes.clone();
        newer[0] = 9;
        assert!(
            decode::<Vec<i32>>(&newer)
                .unwrap_err()
                .contains("version 9")
        );
        assert!(decode::<Vec<i32>>(&[]).is_err());
    }
}
