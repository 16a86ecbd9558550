//! Checksums of migrations: SHA-384, the digest sqlx stores in `_sqlx_migrations`, so a
//! checksum of an unchanged sqlx file means the same thing in both ledgers.

use sha2::{Digest, Sha384};

/// SHA-384 of `bytes`.
pub fn checksum(bytes: &[u8]) -> Vec<u8> {
    Sha384::digest(bytes).to_vec()
}

/// Lower-case hex, for messages that show two checksums side by side.
pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha384_of_empty_input_is_the_known_digest() {
        assert_eq!(
            to_hex(&checksum(b"")),
            "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b"
        );
    }

    #[test]
    fn different_content_gives_different_checksums() {
        assert_ne!(checksum(b"SELECT 1;"), checksum(b"SELECT 2;"));
    }
}
