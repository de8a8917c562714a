//! Keys and values: fixed-size keys numbered through the key space.

use anyhow::{bail, Result};
use rand::Rng;

/// The key space: `space` keys of exactly `size` bytes, `prefix` then a
/// zero-padded decimal number, so keys sort in number order.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: Vec<u8>,
    width: usize,
    space: u64,
    sequential: bool,
}

impl Keys {
    /// Refuses a key size too small to number every key of the space.
    pub fn new(prefix: &str, size: usize, space: u64, sequential: bool) -> Result<Keys> {
        let digits = (space.max(1) - 1).to_string().len();
        if size < prefix.len() + digits {
            bail!(
                "--key-size {size} cannot hold {space} distinct keys after the {}-byte prefix: \
                 at least {} bytes are needed",
                prefix.len(),
                prefix.len() + digits
            );
        }
        Ok(Keys {
            prefix: prefix.as_bytes().to_vec(),
            width: size - prefix.len(),
            space: space.max(1),
            sequential,
        })
    }

    /// How many distinct keys there are.
    pub fn space(&self) -> u64 {
        self.space
    }

    /// The key prefix every key starts with.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// Key number `n` (taken modulo the space).
    pub fn key(&self, n: u64) -> Vec<u8> {
        let mut key = self.prefix.clone();
        key.extend_from_slice(format!("{:0width$}", n % self.space, width = self.width).as_bytes());
        key
    }

    /// The key number for request `ticket`: in order or at random.
    pub fn pick(&self, ticket: u64, rng: &mut impl Rng) -> u64 {
        if self.sequential {
            ticket % self.space
        } else {
            rng.gen_range(0..self.space)
        }
    }
}

/// A value of `size` bytes (printable, so etcdctl shows it plainly).
pub fn value(size: usize) -> Vec<u8> {
    (0..size).map(|i| b'a' + (i % 26) as u8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_size_and_order() {
        let keys = Keys::new("/b/", 8, 1000, true).unwrap();
        assert_eq!(keys.key(7), b"/b/00007");
        assert_eq!(keys.key(1007), b"/b/00007");
        assert!(keys.key(9) < keys.key(10));
        let mut rng = rand::thread_rng();
        assert_eq!(keys.pick(1003, &mut rng), 3);
        let random = Keys::new("", 16, 10, false).unwrap();
        for t in 0..100 {
            let n = random.pick(t, &mut rng);
            assert!(n < 10);
            assert_eq!(random.key(n).len(), 16);
        }
    }

    #[test]
    fn a_too_small_key_size_is_refused() {
        assert!(Keys::new("", 3, 1000, false).is_ok()); // 0..=999
        let err = Keys::new("", 3, 1001, false).unwrap_err().to_string();
        assert!(err.contains("at least 4 bytes"), "{err}");
        assert!(Keys::new("/prefix/", 8, 2, false).is_err());
        assert!(Keys::new("", 1, 1, false).is_ok());
    }

    #[test]
    fn values() {
        assert_eq!(value(0), b"");
        assert_eq!(value(28), b"abcdefghijklmnopqrstuvwxyzab");
    }
}
