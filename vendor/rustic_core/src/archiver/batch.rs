//! Hands the archiver's entries to the file archivers in batches.
//!
//! Each entry used to cross two thread hand-offs on its own (to a file
//! archiver thread and back, then to the tree archiver), each a channel send
//! and a thread wake-up. For an entry the parent snapshot already matched,
//! that costs far more than the entry's own work: on a pass over many
//! unchanged files the threads spent most of their time waking each other.
//! A batch crosses the same hand-offs once for all its entries.
//!
//! A batch ends after an entry whose file must be read (new or changed), so
//! at most one such file sits in a batch and files are still read by the
//! file archiver threads in parallel, as before. Entries keep their order:
//! the batches do, and so do the entries within one.
//!
//! This module uses nothing else of the crate (what ends a batch is the
//! archiver's to say), so that it can be tested on its own.

/// The most entries one batch holds.
pub(crate) const BATCH_ENTRIES: usize = 512;

/// An iterator of batches of the items of `iter`, in order: up to `max`
/// items, and a batch ends after each item `ends_batch` is true for.
pub(crate) struct Batches<I, F> {
    iter: I,
    max: usize,
    ends_batch: F,
}

impl<I, F> Batches<I, F>
where
    I: Iterator,
    F: FnMut(&I::Item) -> bool,
{
    /// Batches `iter`'s items: at most `max` (at least 1) in one.
    pub(crate) fn new(iter: I, max: usize, ends_batch: F) -> Self {
        Self {
            iter,
            max: max.max(1),
            ends_batch,
        }
    }
}

impl<I, F> Iterator for Batches<I, F>
where
    I: Iterator,
    F: FnMut(&I::Item) -> bool,
{
    type Item = Vec<I::Item>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut batch = Vec::new();
        for item in self.iter.by_ref() {
            let last = (self.ends_batch)(&item);
            batch.push(item);
            if last || batch.len() == self.max {
                break;
            }
        }
        (!batch.is_empty()).then_some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::Batches;

    #[test]
    fn batches_keep_the_order_and_end_after_a_marked_item() {
        // 7 marks an item to read: the batch ends after it.
        let items = vec![1, 2, 7, 3, 4, 5, 6, 7, 7, 8];
        let batches: Vec<Vec<i32>> =
            Batches::new(items.clone().into_iter(), 3, |i| *i == 7).collect();
        assert_eq!(
            batches,
            vec![vec![1, 2, 7], vec![3, 4, 5], vec![6, 7], vec![7], vec![8]]
        );
        assert_eq!(batches.concat(), items);
    }

    #[test]
    fn no_items_no_batch_and_a_size_of_zero_is_one() {
        assert_eq!(
            Batches::new(std::iter::empty::<i32>(), 4, |_| false).count(),
            0
        );
        let ones: Vec<Vec<i32>> = Batches::new(vec![1, 2].into_iter(), 0, |_| false).collect();
        assert_eq!(ones, vec![vec![1], vec![2]]);
    }
}
