//! Ordered variables: environments, build arguments and global ARGs.
//!
//! Names keep the place where they were first set and setting one again only changes its value,
//! as BuildKit keeps both the image config's `Env` (`addEnv` replaces the entry in place) and a
//! step's environment (`EnvList`). Lookups and updates go through an index, so a Dockerfile of
//! n ENV lines costs O(n), not O(n²).

use std::collections::HashMap;

use crate::shell;

/// Values by name, in the order names were first set. The index is only ever used for lookups,
/// never iterated, so its hash order cannot leak into any output.
#[derive(Clone, Debug)]
pub(super) struct Ordered<V> {
    entries: Vec<(String, V)>,
    index: HashMap<String, usize>,
}

/// An environment.
pub(super) type Vars = Ordered<String>;

impl<V> Default for Ordered<V> {
    fn default() -> Self {
        Ordered {
            entries: Vec::new(),
            index: HashMap::new(),
        }
    }
}

impl<V> Ordered<V> {
    /// Sets `key`, in place when it is already there.
    pub(super) fn set(&mut self, key: &str, value: V) {
        match self.index.get(key) {
            Some(&i) => self.entries[i].1 = value,
            None => {
                self.index.insert(key.to_string(), self.entries.len());
                self.entries.push((key.to_string(), value));
            }
        }
    }

    /// The value of `key`.
    pub(super) fn value(&self, key: &str) -> Option<&V> {
        self.index.get(key).map(|&i| &self.entries[i].1)
    }

    /// Whether `key` is set.
    pub(super) fn contains(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// The entries, in order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// How many names are set.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

impl Vars {
    /// `KEY=VALUE` strings, in order.
    pub(super) fn to_strings(&self) -> Vec<String> {
        self.entries.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    /// Reads `KEY=VALUE` strings as an image config holds them: an entry without `=` sets the
    /// name to the empty string, and a name given twice keeps its first place and last value.
    pub(super) fn from_strings(list: &[String]) -> Vars {
        let mut vars = Vars::default();
        for entry in list {
            let (k, v) = entry.split_once('=').unwrap_or((entry, ""));
            vars.set(k, v.to_string());
        }
        vars
    }

    /// Bytes of the `KEY=VALUE` strings.
    pub(super) fn text_len(&self) -> usize {
        self.entries.iter().map(|(k, v)| k.len() + 1 + v.len()).sum()
    }
}

impl shell::Env for Vars {
    fn get(&self, name: &str) -> Option<&str> {
        self.value(name).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setting_again_keeps_the_place() {
        let mut vars = Vars::from_strings(&["A=1".into(), "B".into(), "A=2".into(), "C=x=y".into()]);
        assert_eq!(vars.to_strings(), ["A=2", "B=", "C=x=y"]);
        vars.set("B", "3".into());
        vars.set("D", "4".into());
        assert_eq!(vars.to_strings(), ["A=2", "B=3", "C=x=y", "D=4"]);
        assert_eq!(shell::Env::get(&vars, "C"), Some("x=y"));
        assert_eq!(shell::Env::get(&vars, "E"), None);
        assert_eq!((vars.len(), vars.text_len()), (4, 14));
    }
}
