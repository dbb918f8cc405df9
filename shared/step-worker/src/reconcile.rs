//! The step chain's version protocol (DESIGN section 5), as one pure function: what a step
//! message does, given the session it names. The README's "The step chain" has it as a table.
//!
//! A session carries three versions: `version` (bumped by every commit), `step_version` (the
//! version of the message whose step made the latest commit) and `chain_version` (set when a
//! step ends: the version its successor message carries). A message carries the version it
//! continues from.

/// The session's side of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chain {
    pub version: i64,
    pub step_version: Option<i64>,
    pub chain_version: i64,
    /// `pending`, `running` or `stopped` and not finished: a step has work to do.
    pub active: bool,
    /// `completed` or `failed`, or finished (`completed_at` set).
    pub over: bool,
}

/// What a message does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The message is the chain's current one: run the step from the session's checkpoint.
    Run,
    /// The message's step died after committing some of its work: go on from the last commit.
    Resume,
    /// A step ended after this message's and its successor may never have been sent: send the
    /// successor again (SQS drops a copy sent within five minutes; a later one is stale).
    ResendSuccessor,
    /// An old duplicate or a message of another branch: nothing to do.
    Stale,
    /// The session is over.
    Over,
}

impl Action {
    /// Whether the message is the chain's live one: only such a message may fail the session.
    pub fn is_current(self) -> bool {
        matches!(self, Self::Run | Self::Resume)
    }
}

/// What the message of version `message` does to `chain`.
pub fn reconcile(message: i64, chain: &Chain) -> Action {
    if message != chain.version {
        if !(chain.active && message < chain.version) {
            return Action::Stale;
        }
        if chain.chain_version == chain.version {
            return Action::ResendSuccessor;
        }
        if chain.step_version != Some(message) {
            return Action::Stale;
        }
        return Action::Resume;
    }
    if chain.over {
        return Action::Over;
    }
    Action::Run
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A running session at version 7 whose step (message 5) committed twice and ended: the
    /// chain is closed at 7.
    fn closed() -> Chain {
        Chain {
            version: 7,
            step_version: Some(5),
            chain_version: 7,
            active: true,
            over: false,
        }
    }

    /// The same session while its step (message 5) is still going (or died): chain not closed.
    fn open() -> Chain {
        Chain {
            chain_version: 5,
            ..closed()
        }
    }

    #[test]
    fn the_current_message_runs() {
        assert_eq!(reconcile(7, &closed()), Action::Run);
        assert_eq!(reconcile(7, &open()), Action::Run);
        assert!(Action::Run.is_current());
    }

    #[test]
    fn the_message_of_a_step_that_died_after_committing_resumes() {
        assert_eq!(reconcile(5, &open()), Action::Resume);
        assert!(Action::Resume.is_current());
    }

    #[test]
    fn an_older_message_of_a_closed_chain_resends_the_successor() {
        assert_eq!(reconcile(5, &closed()), Action::ResendSuccessor);
        assert_eq!(reconcile(2, &closed()), Action::ResendSuccessor);
        assert!(!Action::ResendSuccessor.is_current());
    }

    #[test]
    fn an_old_duplicate_of_an_open_chain_is_stale() {
        // message 4 is neither the running step's (5) nor the current version
        assert_eq!(reconcile(4, &open()), Action::Stale);
        assert!(!Action::Stale.is_current());
    }

    #[test]
    fn a_message_from_the_future_is_stale() {
        assert_eq!(reconcile(8, &closed()), Action::Stale);
        assert_eq!(reconcile(8, &open()), Action::Stale);
    }

    #[test]
    fn an_older_message_of_an_inactive_session_is_stale() {
        // paused (not active): resume sends the step; an old message must not start one
        let paused = Chain {
            active: false,
            ..closed()
        };
        assert_eq!(reconcile(5, &paused), Action::Stale);
        // the current message of a paused session runs (the step commits and sees the pause)
        assert_eq!(reconcile(7, &paused), Action::Run);
    }

    #[test]
    fn the_current_message_of_a_finished_session_is_over_and_others_stale() {
        let over = Chain {
            active: false,
            over: true,
            ..closed()
        };
        assert_eq!(reconcile(7, &over), Action::Over);
        assert_eq!(reconcile(5, &over), Action::Stale);
        assert!(!Action::Over.is_current());
    }

    #[test]
    fn a_first_message_of_a_new_session_runs() {
        let fresh = Chain {
            version: 0,
            step_version: None,
            chain_version: 0,
            active: true,
            over: false,
        };
        assert_eq!(reconcile(0, &fresh), Action::Run);
    }
}
