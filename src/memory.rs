//! One memory check for every command: an estimate of the bytes a piece of work will hold is
//! compared with this machine's memory before anything large is allocated, so an oversized
//! request is refused with a message instead of an allocation abort or the kernel's kill.

/// Bytes in a GiB.
pub const GIB: f64 = (1u64 << 30) as f64;

/// This machine's memory in bytes (`MemTotal` of /proc/meminfo; 16 GiB where that cannot be
/// read).
pub fn limit() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(16.0 * GIB, |kb| kb * 1024.0)
}

/// Work that would not fit in memory.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "{what} needs about {needed:.1} GiB, more than this machine's {limit:.1} GiB: {remedy}",
    needed = .bytes / GIB,
    limit = .limit / GIB
)]
pub struct TooLarge {
    /// What needs the memory (`N = 500 with 10000 trials of 2000 saved times`).
    pub what: String,
    /// The estimate in bytes.
    pub bytes: f64,
    /// This machine's memory in bytes.
    pub limit: f64,
    /// What to do (`use fewer trials`).
    pub remedy: String,
}

/// Refuses an estimate of `bytes` (non-finite counts as too large) beyond [`limit`]: `what`
/// says what needs them and `remedy` what to change.
///
/// ```
/// use neurode::memory::check;
/// assert!(check(1e3, "a small array", "none needed").is_ok());
/// let e = check(1e30, "10^29 states", "use fewer trials").unwrap_err();
/// assert!(e.to_string().contains("use fewer trials"));
/// ```
pub fn check(
    bytes: f64,
    what: impl Into<String>,
    remedy: impl Into<String>,
) -> Result<(), TooLarge> {
    let limit = limit();
    if bytes.is_finite() && bytes <= limit {
        return Ok(());
    }
    Err(TooLarge {
        what: what.into(),
        bytes,
        limit,
        remedy: remedy.into(),
    })
}

/// [`check`] for work made of parts, each `(bytes, what, remedy)`: the sum is checked, and a
/// refusal names the largest part and its remedy (the option or key to change).
///
/// ```
/// use neurode::memory::check_parts;
/// let parts = [
///     (1e3, "the model".to_string(), "a smaller network".to_string()),
///     (1e30, "the saved states".to_string(), "use fewer --trials".to_string()),
/// ];
/// let e = check_parts(&parts).unwrap_err();
/// assert!(e.to_string().contains("the saved states") && e.remedy.contains("--trials"));
/// ```
pub fn check_parts(parts: &[(f64, String, String)]) -> Result<(), TooLarge> {
    let total: f64 = parts.iter().map(|p| p.0).sum();
    let largest = parts
        .iter()
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map_or((String::new(), String::new()), |p| {
            (p.1.clone(), p.2.clone())
        });
    check(total, largest.0, largest.1)
}
