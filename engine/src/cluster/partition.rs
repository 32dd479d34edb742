//! Which partition a contact is in, and which live node should own a partition.
//!
//! Both hashes are FNV-1a 64, fixed here rather than `std`'s hasher, which may change between
//! Rust releases: every node, of every version, must agree on both.

/// FNV-1a, 64 bits.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The partition of `contact` (its E.164 number) among `partitions`.
pub fn partition_of(contact: &str, partitions: u32) -> u32 {
    let index = fnv1a64(contact.as_bytes()) % u64::from(partitions.max(1));
    u32::try_from(index).unwrap_or(0)
}

/// A number as a subject token or key: its digits (`+15551230000` → `15551230000`). NATS
/// subjects and keys cannot hold `+`.
pub fn token(number: &str) -> String {
    number.chars().filter(char::is_ascii_digit).collect()
}

/// The subject of `contact`'s inputs in partition `p`.
pub fn input_subject(p: u32, contact: &str) -> String {
    format!("smsflow.in.{p}.{}", token(contact))
}

/// Every input of partition `p`.
pub fn partition_filter(p: u32) -> String {
    format!("smsflow.in.{p}.>")
}

/// The subject of texts sent from `sender`.
pub fn send_subject(sender: &str) -> String {
    format!("smsflow.out.{}", token(sender))
}

/// The lease key of partition `p`.
pub fn partition_key(p: u32) -> String {
    format!("p{p}")
}

/// The lease key of the sender `number`.
pub fn sender_key(number: &str) -> String {
    format!("s{}", token(number))
}

/// The node that should hold `key` among `nodes`: the highest hash of (node, key), so a node
/// joining or leaving moves only the keys it wins or held (rendezvous hashing).
pub fn rendezvous<'n>(nodes: &'n [String], key: &str) -> Option<&'n str> {
    let key = fnv1a64(key.as_bytes());
    nodes
        .iter()
        .max_by_key(|node| score(fnv1a64(node.as_bytes()), key))
        .map(String::as_str)
}

/// A node's score for a key. FNV alone orders names that differ in one character the same way
/// for every key (`node1` would beat `node2` everywhere), so the two hashes are mixed with
/// splitmix64's finaliser, whose every output bit depends on every input bit.
fn score(node: u64, key: u64) -> u64 {
    let mut z = node ^ key.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_the_published_test_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn partitions_spread_and_stay_put() {
        let mut counts = [0u32; 8];
        for n in 0..8000 {
            let p = partition_of(&format!("+1555{n:07}"), 8);
            counts[p as usize] += 1;
            assert_eq!(p, partition_of(&format!("+1555{n:07}"), 8));
        }
        assert!(
            counts.iter().all(|count| (800..1200).contains(count)),
            "{counts:?}"
        );
    }

    #[test]
    fn rendezvous_moves_only_what_the_leaving_node_held() {
        let three: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let two: Vec<String> = ["a", "b"].map(String::from).to_vec();
        let mut moved = 0;
        for p in 0..64 {
            let key = partition_key(p);
            let before = rendezvous(&three, &key).unwrap();
            let after = rendezvous(&two, &key).unwrap();
            if before != "c" {
                assert_eq!(before, after, "partition {p} moved though its owner stayed");
            } else {
                moved += 1;
            }
        }
        assert!((10..35).contains(&moved), "c held {moved} of 64");
        assert_eq!(rendezvous(&[], "p0"), None);
    }

    #[test]
    fn rendezvous_spreads_names_that_differ_in_one_character() {
        let nodes: Vec<String> = ["node1", "node2", "node3"].map(String::from).to_vec();
        let mut counts = std::collections::BTreeMap::new();
        for p in 0..64 {
            *counts
                .entry(rendezvous(&nodes, &partition_key(p)).unwrap())
                .or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 3, "{counts:?}");
        assert!(
            counts.values().all(|count| (12..=30).contains(count)),
            "{counts:?}"
        );
    }

    #[test]
    fn tokens_are_digits() {
        assert_eq!(token("+1 (555) 123-0000"), "15551230000");
        assert_eq!(input_subject(3, "+15551230000"), "smsflow.in.3.15551230000");
    }
}
