//! SHA-256 digests, the only form in which sensitive values leave the compiler.

use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 of `bytes`, prefixed `sha256:`.
pub fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The [`sha256`] of the JSON `serde_json::to_vec(value)` would give, hashed as it is
/// written instead of built in memory first.
pub fn sha256_json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    struct Hashing(Sha256);
    impl std::io::Write for Hashing {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    // serde_json writes a few bytes at a time; the hasher is fed in blocks. Writing into a
    // hasher cannot fail; a value JSON cannot represent hashes what was written of it, as
    // `sha256(&to_vec(value).unwrap_or_default())` would hash nothing: both are a caller's bug.
    let mut hashing = std::io::BufWriter::with_capacity(4096, Hashing(Sha256::new()));
    let _ = serde_json::to_writer(&mut hashing, value);
    let _ = std::io::Write::flush(&mut hashing);
    let (Hashing(hasher), _) = hashing.into_parts();
    hex(&hasher.finalize())
}

fn hex(hash: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in hash.iter() {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_digest_is_the_digest_of_the_json() {
        let value = serde_json::json!({"a": [1, "two", null], "b": {"c": "d\"e"}});
        assert_eq!(
            super::sha256_json(&value),
            super::sha256(&serde_json::to_vec(&value).expect("json"))
        );
    }

    #[test]
    fn known_vector() {
        assert_eq!(
            super::sha256(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
