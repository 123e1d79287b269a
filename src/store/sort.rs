//! Puts series in Thanos' order (by label set) without holding the whole answer.
//!
//! Prometheus streams remote-read series sorted by their own label sets and
//! adds its external labels to each afterwards; its series API sends own
//! label sets only. The sidecar then sets its external labels and deletes
//! `without_replica_labels` (the transform). When the transform cannot
//! change any series' relative position, input order is output order and
//! each series leaves at once ([`Mode::Streaming`]): memory stays flat.
//! Otherwise series wait in a sorted buffer until no later input can sort
//! before them ([`Mode::Prefix`], [`Mode::Insertion`]). The input the
//! sorter reads is always a series' own label set, the one Prometheus
//! sorted by. Until the caller knows which mode applies, an undecided sorter
//! holds every series: an answer that ends first is sorted whole.
//!
//! Why the bound is safe: let `n0` be the smallest label name the transform may
//! change, and `P(c)` the labels of the current input `c` whose names are
//! below `n0` (a prefix of `c`, untouched by the transform). For any later
//! input `s` (so `s >= c`):
//! * without deletions every output carries all external labels, so it has a
//!   label named `>= n0` where `c` still has one `< n0`, or agrees with `c`
//!   over `P(c)`; either way `out(s) >= P(c)`;
//! * with deletions, `s` may lose every label named `>= n0` and end right
//!   after any prefix of `P(c)`, so only `out(s) >= c[..1]` holds (in practice:
//!   the metric name). The exception, a series made only of deleted labels,
//!   does not exist in a Prometheus TSDB fed by scrapes or rules.
//!
//! So everything buffered at or below that bound can be sent. With
//! deletions this holds back one metric name's series at a time.
//!
//! [`Mode::Insertion`] is the case where no series has an own label named
//! like an external one and none is deleted: the external labels are only
//! inserted (by the sidecar into the series API's label sets, by Prometheus
//! into the remote-read ones after sorting). Inserting the same labels into
//! two label sets keeps their order unless one is a prefix of the other
//! (`{a="1"}` before `{a="1",b="2"}`, but `{a="1",r="0"}` after
//! `{a="1",b="2",r="0"}`). So for a later input `s >= c`: either `s` extends
//! `c`, and `out(s)` starts with `L(c)`, the output up to and including
//! `c`'s last label (everything inserted after that name lands after `s`'s
//! extra labels or among them); or it does not, and `out(s) > out(c) >= L(c)`.
//! `L(c)` is the bound: only chains of label sets extending one another are
//! held back, which scraped series (all with `instance` and `job`) seldom are.

use std::collections::BTreeMap;

/// A label set in Thanos' order: by name, then value; a prefix sorts first.
pub type Key = Vec<(String, String)>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// The transform keeps the order: pass series straight through.
    Streaming,
    /// The transform may reorder; `n0` is the smallest name it may change.
    Prefix { n0: String, deletion: bool },
    /// The transform only inserts labels no input has (see the module docs).
    Insertion,
}

pub struct Sorter<T> {
    /// `None` until [`Sorter::decide`]: everything is held, sorted.
    mode: Option<Mode>,
    pending: BTreeMap<Key, Vec<T>>,
    pending_len: usize,
    /// Largest number of series held at once (reported in debug logs, tested).
    pub peak: usize,
    last: Option<Key>,
}

impl<T> Sorter<T> {
    pub fn new(mode: Mode) -> Self {
        let mut sorter = Sorter::undecided();
        sorter.mode = Some(mode);
        sorter
    }

    /// A sorter that holds every series, in order, until told its mode: an
    /// answer that ends first is sorted whole, and nobody had to ask
    /// whether the transform can reorder it.
    pub fn undecided() -> Self {
        Sorter {
            mode: None,
            pending: BTreeMap::new(),
            pending_len: 0,
            peak: 0,
            last: None,
        }
    }

    /// Series held now (every one pushed, while undecided).
    pub fn held(&self) -> usize {
        self.pending_len
    }

    /// Sets the mode of an undecided sorter and sends what it allows: in
    /// streaming mode everything held (input order is output order), in the
    /// others what the next push's bound lets through.
    pub fn decide<E>(
        &mut self,
        mode: Mode,
        emit: &mut impl FnMut(T) -> Result<(), E>,
    ) -> Result<(), E> {
        let streaming = mode == Mode::Streaming;
        self.mode = Some(mode);
        if streaming {
            self.last = self.pending.last_key_value().map(|(k, _)| k.clone());
            return self.finish(emit);
        }
        Ok(())
    }

    /// Accepts one series: `input` is its own label set (Prometheus sorted
    /// by those), `output` the transformed one. Calls `emit` for everything
    /// that may leave now.
    pub fn push<E>(
        &mut self,
        input: &[(String, String)],
        output: Key,
        item: T,
        emit: &mut impl FnMut(T) -> Result<(), E>,
    ) -> Result<(), E> {
        match &self.mode {
            None => {
                self.hold(output, item);
                Ok(())
            }
            Some(Mode::Streaming) => {
                if let Some(last) = &self.last {
                    if output < *last {
                        // Cannot happen if the mode was chosen right; worth knowing if it does.
                        log::warn!(series = format!("{output:?}").as_str(); "series out of order in streaming mode");
                    }
                }
                self.last = Some(output);
                emit(item)
            }
            Some(Mode::Prefix { n0, deletion }) => {
                let below: usize = input.iter().take_while(|(n, _)| n < n0).count();
                let keep = if *deletion { below.min(1) } else { below };
                let bound: Key = input[..keep].to_vec();
                self.hold(output, item);
                if keep == 0 {
                    return Ok(());
                }
                self.flush_through(&bound, emit)
            }
            Some(Mode::Insertion) => {
                let end = input
                    .last()
                    .and_then(|(last, _)| output.iter().position(|(n, _)| n == last));
                let bound: Option<Key> = end.map(|end| output[..=end].to_vec());
                self.hold(output, item);
                match bound {
                    Some(bound) => self.flush_through(&bound, emit),
                    None => Ok(()),
                }
            }
        }
    }

    fn hold(&mut self, output: Key, item: T) {
        self.pending.entry(output).or_default().push(item);
        self.pending_len += 1;
        self.peak = self.peak.max(self.pending_len);
    }

    fn flush_through<E>(
        &mut self,
        bound: &Key,
        emit: &mut impl FnMut(T) -> Result<(), E>,
    ) -> Result<(), E> {
        while let Some(entry) = self.pending.first_entry() {
            if entry.key() > bound {
                break;
            }
            let items = entry.remove();
            self.pending_len -= items.len();
            for item in items {
                emit(item)?;
            }
        }
        Ok(())
    }

    /// The input ended: everything left goes, in order.
    pub fn finish<E>(&mut self, emit: &mut impl FnMut(T) -> Result<(), E>) -> Result<(), E> {
        for (_, items) in std::mem::take(&mut self.pending) {
            for item in items {
                emit(item)?;
            }
        }
        self.pending_len = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pairs: &[(&str, &str)]) -> Key {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// Runs inputs (already in Prometheus order) through a transform and the
    /// sorter; returns the output keys and the sorter's peak.
    fn run(mode: Mode, inputs: &[Key], transform: impl Fn(&Key) -> Key) -> (Vec<Key>, usize) {
        let mut sorter = Sorter::new(mode);
        let mut out = Vec::new();
        let mut emit = |k: Key| -> Result<(), ()> {
            out.push(k);
            Ok(())
        };
        for input in inputs {
            let o = transform(input);
            sorter.push(input, o.clone(), o, &mut emit).unwrap();
        }
        sorter.finish(&mut emit).unwrap();
        let peak = sorter.peak;
        (out, peak)
    }

    fn delete(name: &'static str) -> impl Fn(&Key) -> Key {
        move |k: &Key| k.iter().filter(|(n, _)| n != name).cloned().collect()
    }

    #[test]
    fn deleting_a_replica_label_is_repaired_within_a_metric() {
        let mut inputs = vec![
            key(&[
                ("__name__", "a"),
                ("code", "200"),
                ("method", "GET"),
                ("replica", "0"),
            ]),
            key(&[("__name__", "a"), ("code", "200"), ("replica", "0")]),
            key(&[("__name__", "a"), ("instance", "x"), ("replica", "0")]),
            key(&[("__name__", "a"), ("replica", "0")]),
            key(&[("__name__", "a"), ("replica", "0"), ("zone", "z")]),
        ];
        for i in 0..50 {
            inputs.push(key(&[
                ("__name__", "b"),
                ("i", &format!("{i:03}")),
                ("replica", "0"),
            ]));
        }
        inputs.sort();
        let mode = Mode::Prefix {
            n0: "replica".into(),
            deletion: true,
        };
        let (out, peak) = run(mode, &inputs, delete("replica"));
        let mut want: Vec<Key> = inputs.iter().map(delete("replica")).collect();
        want.sort();
        assert_eq!(out, want);
        assert_ne!(
            inputs.iter().map(delete("replica")).collect::<Vec<_>>(),
            want,
            "the case must need repair"
        );
        // Metric `a` is released when `b` starts; `b` is held until the end.
        assert!(peak <= 51, "{peak}");
    }

    #[test]
    fn an_own_label_overwritten_by_an_external_one_is_repaired() {
        // Prometheus keeps a series' own `cluster`; the sidecar overwrites it.
        let inputs = vec![
            key(&[("__name__", "up"), ("cluster", "a-own"), ("job", "z")]),
            key(&[("__name__", "up"), ("cluster", "test"), ("job", "a")]),
            key(&[("__name__", "up"), ("cluster", "test"), ("job", "y")]),
            key(&[("__name__", "up"), ("cluster", "zz-own"), ("job", "b")]),
            key(&[("__name__", "x"), ("cluster", "test")]),
        ];
        let set = |k: &Key| -> Key {
            k.iter()
                .map(|(n, v)| {
                    if n == "cluster" {
                        (n.clone(), "test".into())
                    } else {
                        (n.clone(), v.clone())
                    }
                })
                .collect()
        };
        let mode = Mode::Prefix {
            n0: "cluster".into(),
            deletion: false,
        };
        let (out, _) = run(mode, &inputs, set);
        let mut want: Vec<Key> = inputs.iter().map(set).collect();
        want.sort();
        assert_eq!(out, want);
    }

    #[test]
    fn streaming_holds_nothing() {
        let inputs: Vec<Key> = (0..1000)
            .map(|i| key(&[("__name__", "m"), ("i", &format!("{i:04}"))]))
            .collect();
        let (out, peak) = run(Mode::Streaming, &inputs, |k| k.clone());
        assert_eq!(out, inputs);
        assert_eq!(peak, 0);
    }

    #[test]
    fn an_undecided_sorter_sorts_a_whole_answer_or_hands_over_to_its_mode() {
        // Deleting `replica` reorders these; nothing is sent undecided.
        let inputs = [
            key(&[("__name__", "m"), ("a", "1"), ("replica", "0")]),
            key(&[("__name__", "m"), ("replica", "0")]),
            key(&[("__name__", "m"), ("replica", "0"), ("z", "1")]),
            key(&[("__name__", "n"), ("replica", "0")]),
        ];
        let gone = delete("replica");
        let mut want: Vec<Key> = inputs.iter().map(&gone).collect();
        want.sort();
        for decided_after in [None, Some(0), Some(1), Some(3)] {
            let mut sorter = Sorter::undecided();
            let mut out = Vec::new();
            let mut emit = |k: Key| -> Result<(), ()> {
                out.push(k);
                Ok(())
            };
            for (i, input) in inputs.iter().enumerate() {
                if decided_after == Some(i) {
                    let mode = Mode::Prefix {
                        n0: "replica".into(),
                        deletion: true,
                    };
                    sorter.decide(mode, &mut emit).unwrap();
                }
                let o = gone(input);
                sorter.push(input, o.clone(), o, &mut emit).unwrap();
            }
            sorter.finish(&mut emit).unwrap();
            assert_eq!(out, want, "decided before input {decided_after:?}");
        }

        // Decided streaming, what was held goes at once, in order.
        let inputs: Vec<Key> = (0..5)
            .map(|i| key(&[("__name__", "m"), ("i", &format!("{i}"))]))
            .collect();
        let mut sorter = Sorter::undecided();
        let mut out = Vec::new();
        let mut emit = |k: Key| -> Result<(), ()> {
            out.push(k);
            Ok(())
        };
        for input in &inputs[..3] {
            sorter
                .push(input, input.clone(), input.clone(), &mut emit)
                .unwrap();
        }
        sorter.decide(Mode::Streaming, &mut emit).unwrap();
        for input in &inputs[3..] {
            sorter
                .push(input, input.clone(), input.clone(), &mut emit)
                .unwrap();
        }
        assert_eq!(out, inputs);
        assert_eq!(sorter.peak, 3);
    }

    /// Inserts `labels` (names no input has), external labels' way.
    fn insert(labels: &'static [(&'static str, &'static str)]) -> impl Fn(&Key) -> Key {
        move |k: &Key| {
            let mut out = k.clone();
            out.extend(labels.iter().map(|(n, v)| (n.to_string(), v.to_string())));
            out.sort();
            out
        }
    }

    #[test]
    fn inserting_labels_holds_back_only_label_sets_that_extend_one_another() {
        let mut inputs = vec![
            key(&[("__name__", "a")]),
            key(&[("__name__", "a"), ("code", "200")]),
            key(&[("__name__", "a"), ("code", "200"), ("method", "GET")]),
            key(&[("__name__", "a"), ("instance", "x")]),
        ];
        for i in 0..1000 {
            inputs.push(key(&[
                ("__name__", "b"),
                ("instance", &format!("h{i:04}")),
                ("job", "j"),
            ]));
        }
        inputs.sort();
        let added = insert(&[("cluster", "c"), ("replica", "0")]);
        let (out, peak) = run(Mode::Insertion, &inputs, &added);
        let mut want: Vec<Key> = inputs.iter().map(&added).collect();
        want.sort();
        assert_eq!(out, want);
        assert_ne!(
            inputs.iter().map(&added).collect::<Vec<_>>(),
            want,
            "the case must need repair"
        );
        // `a`'s four label sets at most (the chain of three and the one that
        // releases it), never all of `b`.
        assert!(peak <= 4, "{peak}");
    }

    /// A small deterministic generator (xorshift).
    fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        }
    }

    /// Up to 40 label sets over few names and values, so deletions create
    /// prefixes and collisions; `last` (if any) ends every one. Sorted.
    fn random_label_sets(next: &mut impl FnMut() -> u64, last: Option<(&str, &str)>) -> Vec<Key> {
        let mut inputs = Vec::new();
        for _ in 0..(next() % 40) {
            let mut k = vec![("__name__".to_string(), format!("m{}", next() % 3))];
            for name in ["a", "c", "q", "s"] {
                if next() % 2 == 0 {
                    k.push((name.to_string(), format!("{}", next() % 3)));
                }
            }
            if let Some((n, v)) = last {
                k.push((n.to_string(), v.to_string()));
            }
            inputs.push(k);
        }
        inputs.sort();
        inputs
    }

    #[test]
    fn random_label_sets_with_inserted_labels_come_out_sorted() {
        let mut next = xorshift(0x2545f4914f6cdd1d);
        for round in 0..300 {
            let mut inputs = random_label_sets(&mut next, None);
            inputs.dedup();
            let added = insert(&[("b", "x"), ("r", "0")]);
            let (out, _) = run(Mode::Insertion, &inputs, &added);
            let mut want: Vec<Key> = inputs.iter().map(&added).collect();
            want.sort();
            assert_eq!(out, want, "round {round}");
        }
    }

    #[test]
    fn random_label_sets_come_out_sorted() {
        let mut next = xorshift(0x9e3779b97f4a7c15);
        for round in 0..200 {
            let inputs = random_label_sets(&mut next, Some(("r", "0")));
            let mode = Mode::Prefix {
                n0: "r".into(),
                deletion: true,
            };
            let (out, _) = run(mode, &inputs, delete("r"));
            let mut want: Vec<Key> = inputs.iter().map(delete("r")).collect();
            want.sort();
            assert_eq!(out, want, "round {round}");
        }
    }
}
