//! What a holder reads of its machine for its report: CLOCK_MONOTONIC (the one clock two
//! processes on one machine share; `std::time::Instant` is opaque and not comparable
//! across processes), the boot id that says whose monotonic clock it is, the host name.

use rustix::time::{ClockId, clock_gettime};

/// CLOCK_MONOTONIC in nanoseconds.
pub fn monotonic_ns() -> u64 {
    let t = clock_gettime(ClockId::Monotonic);
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
}

/// `/proc/sys/kernel/random/boot_id`: the same on one machine until it reboots. Where it
/// cannot be read, a value no other report has, so that no clock comparison is made.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| format!("unknown-{}-{}", hostname(), std::process::id()))
}

/// The machine's name (uname's node name).
pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// Wall clock, milliseconds since the Unix epoch (the status record's "since").
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_monotonic_clock_goes_forward() {
        let a = super::monotonic_ns();
        let b = super::monotonic_ns();
        assert!(b >= a && a > 0);
        assert!(!super::boot_id().is_empty());
    }
}
