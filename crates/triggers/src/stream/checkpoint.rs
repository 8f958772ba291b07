//! A shard's checkpoint when several batches of it run at once (lanes of
//! [`super::order`]): batches finish in any order, but the checkpoint only
//! moves past a record once it and every record before it in the shard
//! are done (succeeded, or given up on).

use std::collections::VecDeque;

/// Records of one shard in read order, each pending or done.
#[derive(Debug, Clone, Default)]
pub struct Checkpointer {
    /// Ticket of the first entry of `records`.
    base: u64,
    /// (sequence number, done), oldest first.
    records: VecDeque<(String, bool)>,
}

/// A record's place in its shard's [`Checkpointer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(u64);

impl Checkpointer {
    pub fn new() -> Self {
        Self::default()
    }

    /// A record read from the shard (records are read in shard order).
    pub fn read(&mut self, sequence_number: impl Into<String>) -> Ticket {
        let ticket = Ticket(self.base + self.records.len() as u64);
        self.records.push_back((sequence_number.into(), false));
        ticket
    }

    /// A record is done. Unknown or already checkpointed tickets are
    /// ignored.
    pub fn done(&mut self, ticket: Ticket) {
        let Some(i) = ticket.0.checked_sub(self.base) else {
            return;
        };
        if let Some(r) = usize::try_from(i)
            .ok()
            .and_then(|i| self.records.get_mut(i))
        {
            r.1 = true;
        }
    }

    /// The sequence number the checkpoint may now move to (the last record
    /// with every earlier one done), if it moved since the last call.
    pub fn advance(&mut self) -> Option<String> {
        let mut last = None;
        while self.records.front().is_some_and(|r| r.1) {
            last = self.records.pop_front().map(|r| r.0);
            self.base += 1;
        }
        last
    }

    /// Records read and not yet checkpointed.
    pub fn outstanding(&self) -> usize {
        self.records.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_only_past_a_done_prefix() {
        let mut c = Checkpointer::new();
        let t: Vec<Ticket> = ["1", "2", "3", "4"]
            .into_iter()
            .map(|s| c.read(s))
            .collect();
        assert_eq!(c.advance(), None);
        c.done(t[1]);
        c.done(t[3]);
        assert_eq!(c.advance(), None, "record 1 still pending");
        c.done(t[0]);
        assert_eq!(c.advance().as_deref(), Some("2"));
        assert_eq!(c.advance(), None, "no move since");
        assert_eq!(c.outstanding(), 2);
        c.done(t[2]);
        assert_eq!(c.advance().as_deref(), Some("4"));
        assert_eq!(c.outstanding(), 0);
    }

    #[test]
    fn stale_and_unknown_tickets_are_ignored() {
        let mut c = Checkpointer::new();
        let a = c.read("a");
        c.done(a);
        assert_eq!(c.advance().as_deref(), Some("a"));
        c.done(a);
        c.done(Ticket(99));
        let b = c.read("b");
        assert_eq!(c.advance(), None);
        c.done(b);
        assert_eq!(c.advance().as_deref(), Some("b"));
    }
}
