//! `RecentMap`: per-name state (a source file's clock, a feature's last time, a source's next
//! sequence number) looked up once per event.
//!
//! Events come in runs from one source and one feature, so the name used last is compared
//! first (inline, `short_eq`: no hashing, no allocation, no call); other names go through an
//! index. A
//! `HashMap<String, _>` with `entry(name.to_string())` instead hashed and allocated per event
//! and was a sixth of `convert`'s instructions.

use crate::short_eq::short_eq;
use std::collections::HashMap;

#[derive(Debug)]
pub struct RecentMap<V> {
    entries: Vec<(String, V)>,
    index: HashMap<String, usize>,
    last: usize,
}

impl<V> Default for RecentMap<V> {
    fn default() -> Self {
        RecentMap {
            entries: Vec::new(),
            index: HashMap::new(),
            last: 0,
        }
    }
}

impl<V> RecentMap<V> {
    /// The value of `key`, made by `make` the first time.
    pub fn get_or_insert_with(&mut self, key: &str, make: impl FnOnce() -> V) -> &mut V {
        if self
            .entries
            .get(self.last)
            .is_none_or(|(k, _)| !short_eq(k, key))
        {
            self.last = match self.index.get(key) {
                Some(&i) => i,
                None => {
                    self.index.insert(key.to_string(), self.entries.len());
                    self.entries.push((key.to_string(), make()));
                    self.entries.len() - 1
                }
            };
        }
        &mut self.entries[self.last].1
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        match self.entries.get(self.last) {
            Some((k, v)) if short_eq(k, key) => Some(v),
            _ => self.index.get(key).map(|&i| &self.entries[i].1),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The names and values, in the order the names were first seen.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }
}

impl<V: Default> RecentMap<V> {
    /// The value of `key`, `V::default()` the first time.
    pub fn entry(&mut self, key: &str) -> &mut V {
        self.get_or_insert_with(key, V::default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_one_value_per_name_across_switches() {
        let mut m: RecentMap<u32> = RecentMap::default();
        assert!(m.is_empty());
        assert_eq!(m.get("a"), None);
        *m.entry("a") += 1;
        *m.entry("a") += 1;
        *m.entry("b") += 10;
        *m.entry("a") += 1;
        *m.entry("c") += 100;
        *m.entry("b") += 10;
        assert_eq!(m.get("a"), Some(&3));
        assert_eq!(m.get("b"), Some(&20));
        assert_eq!(m.get("c"), Some(&100));
        assert_eq!(m.get("d"), None);
        assert_eq!(
            m.iter().collect::<Vec<_>>(),
            [("a", &3), ("b", &20), ("c", &100)]
        );
        assert_eq!(*m.get_or_insert_with("d", || 7), 7);
        assert_eq!(*m.get_or_insert_with("d", || 9), 7);
    }
}
