//! Several roles as one machine type.
//!
//! The drivers run participants of one type (the simulator's `Vec<(PeerId, M)>`, the
//! broker adapter's pool), so an algorithm with several roles wraps them in one enum.
//! Every such enum is the same code: delegate each [`StateMachine`] method to the role
//! inside, and turn each role's outcome into one type. [`roles!`] writes it once, so a
//! method added to the contract (or a default a role overrides) reaches every wrapper;
//! a hand-written wrapper that forgot one would silently use the default instead.

use super::{HoldId, Millis, Output, Rejection, Route, StateMachine};

/// A boxed role is that role: a wrapper can keep a large role in a `Box` (to keep its
/// enum small) and still delegate to it. The calls name the trait, so a role's inherent
/// method of the same name (the list master's `handle`) is never taken instead.
impl<T: StateMachine + ?Sized> StateMachine for Box<T> {
    type Msg = T::Msg;
    type Finished = T::Finished;

    fn handle(&mut self, now: Millis, bytes: &[u8]) -> Result<(), Rejection> {
        <T as StateMachine>::handle(self, now, bytes)
    }
    fn handle_from(
        &mut self,
        now: Millis,
        bytes: &[u8],
        publisher: Option<&str>,
    ) -> Result<(), Rejection> {
        <T as StateMachine>::handle_from(self, now, bytes, publisher)
    }
    fn next_timeout(&self) -> Option<Millis> {
        <T as StateMachine>::next_timeout(self)
    }
    fn handle_timeout(&mut self, now: Millis) {
        <T as StateMachine>::handle_timeout(self, now)
    }
    fn poll_output(&mut self) -> Option<Output<Self::Msg, Self::Finished>> {
        <T as StateMachine>::poll_output(self)
    }
    fn interrupt(&mut self, now: Millis, reason: String) {
        <T as StateMachine>::interrupt(self, now, reason)
    }
    fn take_hold(&mut self) -> Option<HoldId> {
        <T as StateMachine>::take_hold(self)
    }
    fn link_lost(&mut self) {
        <T as StateMachine>::link_lost(self)
    }
    fn pack(&self, step: Vec<(Route, Self::Msg)>, max: usize) -> Vec<(Route, Self::Msg)> {
        <T as StateMachine>::pack(self, step, max)
    }
}

/// Declares an enum with one variant per role and implements [`StateMachine`] for it by
/// delegating every method to the role inside; each role's outcome is turned into the
/// wrapper's `Finished` type by the function given after `=>` (usually a variant of the
/// outcome enum, which may be shared by several roles).
///
/// ```ignore
/// roles! {
///     /// Any participant.
///     pub enum Part: Message => Ended {
///         Clerk(Clerk) => Ended::Clerk,
///         Peer(Box<Peer>) => Ended::Peer,
///     }
/// }
/// ```
macro_rules! roles {
    (
        $(#[$attr:meta])*
        $vis:vis enum $name:ident : $msg:ty => $ended:ty {
            $( $(#[$vattr:meta])* $variant:ident($role:ty) => $map:expr ),+ $(,)?
        }
    ) => {
        $(#[$attr])*
        $vis enum $name {
            $( $(#[$vattr])* $variant($role), )+
        }

        impl $crate::contract::StateMachine for $name {
            type Msg = $msg;
            type Finished = $ended;

            fn handle(
                &mut self,
                now: $crate::contract::Millis,
                bytes: &[u8],
            ) -> Result<(), $crate::contract::Rejection> {
                match self {
                    $( $name::$variant(m) =>
                        <_ as $crate::contract::StateMachine>::handle(m, now, bytes), )+
                }
            }
            fn handle_from(
                &mut self,
                now: $crate::contract::Millis,
                bytes: &[u8],
                publisher: Option<&str>,
            ) -> Result<(), $crate::contract::Rejection> {
                match self {
                    $( $name::$variant(m) => <_ as $crate::contract::StateMachine>::handle_from(
                        m, now, bytes, publisher,
                    ), )+
                }
            }
            fn next_timeout(&self) -> Option<$crate::contract::Millis> {
                match self {
                    $( $name::$variant(m) =>
                        <_ as $crate::contract::StateMachine>::next_timeout(m), )+
                }
            }
            fn handle_timeout(&mut self, now: $crate::contract::Millis) {
                match self {
                    $( $name::$variant(m) =>
                        <_ as $crate::contract::StateMachine>::handle_timeout(m, now), )+
                }
            }
            fn poll_output(&mut self) -> Option<$crate::contract::Output<$msg, $ended>> {
                match self {
                    $( $name::$variant(m) =>
                        <_ as $crate::contract::StateMachine>::poll_output(m)
                            .map(|o| o.map_finished($map)), )+
                }
            }
            fn interrupt(&mut self, now: $crate::contract::Millis, reason: String) {
                match self {
                    $( $name::$variant(m) =>
                        <_ as $crate::contract::StateMachine>::interrupt(m, now, reason), )+
                }
            }
            fn take_hold(&mut self) -> Option<$crate::contract::HoldId> {
                match self {
                    $( $name::$variant(m) =>
                        <_ as $crate::contract::StateMachine>::take_hold(m), )+
                }
            }
            fn link_lost(&mut self) {
                match self {
                    $( $name::$variant(m) =>
                        <_ as $crate::contract::StateMachine>::link_lost(m), )+
                }
            }
            fn pack(
                &self,
                step: Vec<($crate::contract::Route, $msg)>,
                max: usize,
            ) -> Vec<($crate::contract::Route, $msg)> {
                match self {
                    $( $name::$variant(m) =>
                        <_ as $crate::contract::StateMachine>::pack(m, step, max), )+
                }
            }
        }
    };
}

pub(crate) use roles;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Wire;

    #[derive(Debug, Clone, PartialEq)]
    struct Msg(u8);

    impl Wire for Msg {
        fn encode(&self) -> Result<Vec<u8>, crate::contract::EncodeError> {
            Ok(vec![self.0])
        }
        fn kind(&self) -> &'static str {
            "msg"
        }
    }

    /// A role that overrides every default, so that a wrapper that forgot to delegate
    /// one shows.
    #[derive(Default)]
    struct Loud {
        out: Vec<Output<Msg, u32>>,
        from: Option<String>,
        lost: bool,
        now: Millis,
    }

    impl StateMachine for Loud {
        type Msg = Msg;
        type Finished = u32;
        fn handle(&mut self, now: Millis, bytes: &[u8]) -> Result<(), Rejection> {
            self.now = now;
            self.out.push(Output::Publish {
                route: Route::Peer(1),
                msg: Msg(bytes[0]),
            });
            Ok(())
        }
        fn handle_from(
            &mut self,
            now: Millis,
            bytes: &[u8],
            publisher: Option<&str>,
        ) -> Result<(), Rejection> {
            self.from = publisher.map(str::to_string);
            self.handle(now, bytes)
        }
        fn next_timeout(&self) -> Option<Millis> {
            Some(7)
        }
        fn handle_timeout(&mut self, now: Millis) {
            self.now = now;
        }
        fn poll_output(&mut self) -> Option<Output<Msg, u32>> {
            (!self.out.is_empty()).then(|| self.out.remove(0))
        }
        fn interrupt(&mut self, _now: Millis, reason: String) {
            self.out.push(Output::Finished(reason.len() as u32));
        }
        fn take_hold(&mut self) -> Option<HoldId> {
            Some(42)
        }
        fn link_lost(&mut self) {
            self.lost = true;
        }
        fn pack(&self, mut step: Vec<(Route, Msg)>, max: usize) -> Vec<(Route, Msg)> {
            step.truncate(max);
            step
        }
    }

    /// A role that keeps every default.
    struct Quiet;

    impl StateMachine for Quiet {
        type Msg = Msg;
        type Finished = &'static str;
        fn handle(&mut self, _now: Millis, _bytes: &[u8]) -> Result<(), Rejection> {
            Err(Rejection::Refused("quiet".into()))
        }
        fn next_timeout(&self) -> Option<Millis> {
            None
        }
        fn handle_timeout(&mut self, _now: Millis) {}
        fn poll_output(&mut self) -> Option<Output<Msg, &'static str>> {
            None
        }
        fn interrupt(&mut self, _now: Millis, _reason: String) {}
    }

    #[derive(Debug, PartialEq)]
    enum Ended {
        Loud(u32),
        Quiet(&'static str),
    }

    roles! {
        /// Two roles, one of them boxed.
        enum Both: Msg => Ended {
            Loud(Box<Loud>) => Ended::Loud,
            Quiet(Quiet) => Ended::Quiet,
        }
    }

    #[test]
    fn every_method_reaches_the_role_and_outcomes_are_mapped() {
        let mut m = Both::Loud(Box::default());
        assert_eq!(m.handle_from(3, &[9], Some("alice")), Ok(()));
        assert_eq!(m.next_timeout(), Some(7));
        assert_eq!(m.take_hold(), Some(42));
        m.link_lost();
        m.handle_timeout(5);
        let step = vec![(Route::Peer(1), Msg(1)), (Route::Peer(2), Msg(2))];
        assert_eq!(m.pack(step, 1), vec![(Route::Peer(1), Msg(1))]);
        assert_eq!(
            m.poll_output(),
            Some(Output::Publish {
                route: Route::Peer(1),
                msg: Msg(9)
            })
        );
        m.interrupt(6, "stop".into());
        assert_eq!(m.poll_output(), Some(Output::Finished(Ended::Loud(4))));
        assert_eq!(m.poll_output(), None);
        let Both::Loud(inner) = &m else {
            unreachable!("built as Loud")
        };
        assert_eq!(inner.from.as_deref(), Some("alice"));
        assert!(inner.lost);
        assert_eq!(inner.now, 5);

        let mut q = Both::Quiet(Quiet);
        assert!(q.handle_from(0, &[1], Some("bob")).is_err());
        assert_eq!(q.take_hold(), None);
        assert_eq!(q.next_timeout(), None);
        let step = vec![(Route::Peer(1), Msg(1)), (Route::Peer(2), Msg(2))];
        assert_eq!(q.pack(step.clone(), 1), step);
        assert_eq!(q.poll_output(), None);
    }
}
