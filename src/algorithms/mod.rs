//! One folder per algorithm: its messages, its state machines (pure, see
//! [`crate::contract`]), its wiring on the broker, its checks and its report.
//!
//! The one list of algorithms is the line below: it declares each folder as a module and
//! hands the same names to the dispatcher ([`crate::app`]), which flattens each one's
//! subcommands into `sync-run`'s. Adding an algorithm is its folder plus its name here
//! (docs/ARCHITECTURE.md has the checklist).

/// Declares the algorithms' modules and `each_algorithm!(m)`, which calls `m!` with their
/// names in this order (the order of `sync-run --help`). `$d` is a `$` passed in, so that
/// the inner macro can have metavariables of its own.
macro_rules! house {
    ($d:tt $($alg:ident),* $(,)?) => {
        $(pub mod $alg;)*

        /// Calls the macro `m` with every algorithm's name.
        macro_rules! each_algorithm {
            ($d m:path) => { $d m!($($alg),*); };
        }
        pub(crate) use each_algorithm;
    };
}

house!($ list, mutex, clocks, snapshot, bank, market, lock, rpc);
