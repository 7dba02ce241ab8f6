//! Routing builds over a fleet: consistent hashing, as buildx's Kubernetes driver does with
//! `loadbalance=sticky`. Each address owns [`POINTS`] points on a ring of `u64`s (the sha256 of
//! `address#n`); a key goes to the owner of the first point at or after its hash, and its
//! failover order is the owners of the following points, each address once. Adding or removing
//! one daemon moves only the keys it owns (about 1/N of them).

use sha2::{Digest, Sha256};

use crate::Address;

/// Points per address: enough that N daemons share the keys evenly.
pub const POINTS: usize = 160;

/// A fleet's ring.
#[derive(Clone, Debug)]
pub struct Ring {
    addresses: Vec<Address>,
    /// (point, index into `addresses`), sorted.
    points: Vec<(u64, usize)>,
}

fn hash(data: &[u8]) -> u64 {
    let digest = Sha256::digest(data);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

impl Ring {
    /// The ring of `addresses` (their order does not matter).
    pub fn new(addresses: &[Address]) -> Ring {
        let mut points = Vec::with_capacity(addresses.len() * POINTS);
        for (i, address) in addresses.iter().enumerate() {
            for n in 0..POINTS {
                points.push((hash(format!("{address}#{n}").as_bytes()), i));
            }
        }
        points.sort_unstable();
        Ring {
            addresses: addresses.to_vec(),
            points,
        }
    }

    /// The addresses to try for `key`, in order: its owner first, then the failover order.
    pub fn route(&self, key: &str) -> Vec<&Address> {
        if self.points.is_empty() {
            return Vec::new();
        }
        let start = self.points.partition_point(|(p, _)| *p < hash(key.as_bytes()));
        let mut order: Vec<&Address> = Vec::with_capacity(self.addresses.len());
        let mut seen = vec![false; self.addresses.len()];
        for k in 0..self.points.len() {
            let (_, i) = self.points[(start + k) % self.points.len()];
            if !seen[i] {
                seen[i] = true;
                order.push(&self.addresses[i]);
                if order.len() == self.addresses.len() {
                    break;
                }
            }
        }
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet(n: u16) -> Vec<Address> {
        (0..n)
            .map(|i| Address::Tcp {
                host: format!("kiln-{i}.kiln"),
                port: 7777,
            })
            .collect()
    }

    #[test]
    fn routes_are_stable_complete_and_independent_of_order() {
        let addresses = fleet(3);
        let ring = Ring::new(&addresses);
        let mut reversed = addresses.clone();
        reversed.reverse();
        let other = Ring::new(&reversed);
        for key in ["git@h:a.git|.|Dockerfile", "x", ""] {
            let route = ring.route(key);
            assert_eq!(route.len(), 3);
            assert_eq!(route, ring.route(key));
            assert_eq!(route, other.route(key));
        }
    }

    #[test]
    fn keys_spread_and_removing_a_daemon_moves_only_its_keys() {
        let addresses = fleet(3);
        let ring = Ring::new(&addresses);
        let smaller = Ring::new(&addresses[..2]);
        let mut counts = [0usize; 3];
        for k in 0..3000 {
            let key = format!("project-{k}");
            let owner = ring.route(&key)[0];
            let i = addresses.iter().position(|a| a == owner).unwrap();
            counts[i] += 1;
            if i < 2 {
                assert_eq!(smaller.route(&key)[0], owner, "{key} moved");
            } else {
                // Its next daemon on the ring takes it.
                assert_eq!(smaller.route(&key)[0], ring.route(&key)[1]);
            }
        }
        for c in counts {
            assert!((700..1300).contains(&c), "uneven spread {counts:?}");
        }
    }
}
