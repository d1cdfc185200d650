//! The checks every algorithm's decoder makes before it reads a message's shape: the size
//! (a misbehaving publisher cannot make a participant parse megabytes) and the protocol
//! version, read first so that a newer message is refused as a newer version rather than
//! as garbage (a v2 message may have fields v1 does not know).

use super::Rejection;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Refuses a body larger than `max` bytes or whose `v` is not `version`.
pub fn precheck(bytes: &[u8], max: usize, version: u32) -> Result<(), Rejection> {
    if bytes.len() > max {
        return Err(Rejection::TooLarge(bytes.len(), max));
    }
    #[derive(Deserialize)]
    struct Probe {
        v: Option<serde_json::Value>,
    }
    let probe: Probe = parse(bytes)?;
    match probe.v.as_ref().map(serde_json::Value::as_u64) {
        Some(Some(v)) if v == u64::from(version) => Ok(()),
        Some(Some(v)) => Err(Rejection::Version(
            Some(v.min(u64::from(u32::MAX)) as u32),
            version,
        )),
        _ => Err(Rejection::Version(None, version)),
    }
}

/// Parses JSON, a failure being a [`Rejection::Malformed`].
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Rejection> {
    serde_json::from_slice(bytes).map_err(|e| Rejection::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_then_version() {
        assert_eq!(precheck(b"{\"v\":1}", 3, 1), Err(Rejection::TooLarge(7, 3)));
        assert_eq!(precheck(b"{\"v\":1}", 100, 1), Ok(()));
        assert_eq!(
            precheck(b"{\"v\":2,\"new\":true}", 100, 1),
            Err(Rejection::Version(Some(2), 1))
        );
        assert_eq!(precheck(b"{}", 100, 1), Err(Rejection::Version(None, 1)));
        assert!(matches!(
            precheck(b"{not json", 100, 1),
            Err(Rejection::Malformed(_))
        ));
    }
}
